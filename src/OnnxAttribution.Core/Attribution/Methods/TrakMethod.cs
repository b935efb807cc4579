using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// TRAK (Park et al. 2023, Eq. 8 with one model) with the diffusion loss as the measurement, and D-TRAK (Zheng et al.
/// 2024, Sec. 3–4) with the squared output norm ("Square"): τ(q)ᵢ = φ_qᵀ (ΦᵀΦ + λI)⁻¹ φᵢ over projected gradients
/// averaged over fixed timesteps and noise. The store is the feature store of <see cref="TrakEngine"/>.
/// </summary>
public sealed class TrakMethod(string name, MeasurementKind measurement, double defaultDamping) : AttributionMethod<TrakSettings>, IDampedMethod
{
    /// <inheritdoc/>
    public override string Name { get; } = name;

    /// <inheritdoc/>
    public override MethodCapabilities Capabilities { get; } = new() { ConditionalModels = true, QueryTimesteps = true, Updatable = true };

    /// <inheritdoc/>
    public double DefaultDamping { get; } = defaultDamping;

    /// <summary>The default measurement of this method (loss for TRAK, square for D-TRAK).</summary>
    public MeasurementKind Measurement { get; } = measurement;

    /// <inheritdoc/>
    public override string Summary => Measurement == MeasurementKind.Loss
        ? "projected gradients of the diffusion loss, kernel-preconditioned (ΦᵀΦ + λI)⁻¹"
        : "projected gradients of the squared output norm ‖ε̂‖², kernel-preconditioned (ΦᵀΦ + λI)⁻¹";

    /// <summary>The featurize options a build with <paramref name="request"/> uses (its settings bound by <see cref="AttributionMethod{TSettings}.Bind"/>).</summary>
    public FeaturizeOptions Options(MethodBuildRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return Options(request, Bind(request.Settings), Name, Measurement);
    }

    /// <summary>
    /// The featurize options of a method whose store is a feature store (TRAK, D-TRAK, DAS, gradient cosine): K evenly spaced
    /// timesteps, the settings' draws, projection and dtype, and <paramref name="measurement"/> unless the settings name one.
    /// </summary>
    /// <param name="request">The model, data and store folder.</param>
    /// <param name="settings">The method's settings, bound from the request's.</param>
    /// <param name="method">The method named in the store's meta.json.</param>
    /// <param name="measurement">The method's own measurement.</param>
    public static FeaturizeOptions Options(MethodBuildRequest request, GradientFeatureSettings settings, string method, MeasurementKind measurement)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(settings);
        var schedule = ModelDirectory.Open(request.ModelDirectory).CreateSchedule();
        return new FeaturizeOptions
        {
            ModelDirectory = request.ModelDirectory,
            Data = request.Data,
            Subset = request.Source.Subset,
            Plan = new FeaturizationPlan(FeaturizationPlan.Evenly(schedule.Timesteps, settings.Timesteps), settings.NoiseDraws, settings.NoiseSeed, settings.Measurement ?? measurement),
            Projection = new ProjectionSettings(settings.Projector, settings.Distribution, settings.Dim, settings.ProjectionSeed),
            DType = settings.DType,
            Method = method,
            OutDirectory = request.OutDirectory,
            BatchSize = settings.BatchSize,
            Session = request.Session,
        };
    }

    /// <inheritdoc/>
    protected override void Build(MethodBuildRequest request, TrakSettings settings, CancellationToken cancel)
    {
        var options = Options(request, settings, Name, Measurement);
        using (TrakEngine.Featurize(options, MethodProgress.Of(request.Progress, "featurize"), cancel))
        {
        }
        request.Source.Save(request.OutDirectory);
        double damping = settings.Damping ?? DefaultDamping;
        PreconditionerBuilder.Finalize(request.OutDirectory, damping, MethodProgress.Of(request.Progress, "finalize"));
        MethodManifest.Of(Name, new { measurement = options.Plan.Measurement.ToString().ToLowerInvariant(), damping }).Save(request.OutDirectory);
    }

    /// <inheritdoc/>
    public override IAttributionScorer Open(string storeDirectory, string modelDirectory, SessionSettings session) =>
        new Scorer(Name, TrakScorer.Open(storeDirectory, modelDirectory, session));

    /// <summary>Finalizes the store's features anew with <paramref name="relativeDamping"/> (<see cref="PreconditionerBuilder.Redamp"/>).</summary>
    public void Redamp(string storeDirectory, double relativeDamping, GramCache grams) =>
        PreconditionerBuilder.Redamp(storeDirectory, Name, relativeDamping, [storeDirectory], grams);

    /// <summary>The query side: features of the query images, one solve, one scan of the store.</summary>
    private sealed class Scorer(string method, TrakScorer trak) : IAttributionScorer
    {
        public string Method { get; } = method;

        public long Rows => trak.Store.Rows;

        public float[] Scores(IReadOnlyList<AttributionQuery> queries, CancellationToken cancel = default) =>
            trak.Scores(Images(queries), queries.Count, Conditions(queries));

        public Store.TopKResult[] TopK(IReadOnlyList<AttributionQuery> queries, int top, CancellationToken cancel = default) =>
            trak.Attribute(Images(queries), queries.Count, top, Conditions(queries));

        public void Dispose() => trak.Dispose();
    }

    /// <summary>The queries' condition values in order: empty when no query has one (an unconditional model).</summary>
    /// <exception cref="UserInputException">Some queries have a condition and others not.</exception>
    public static long[] Conditions(IReadOnlyList<AttributionQuery> queries)
    {
        ArgumentNullException.ThrowIfNull(queries);
        int with = queries.Count(q => q.Condition is not null);
        if (with == 0)
        {
            return [];
        }
        if (with != queries.Count)
        {
            var missing = queries.First(q => q.Condition is null);
            throw new UserInputException($"query '{missing.Label}' has no condition, but {with} of the {queries.Count} queries do: give each query its label");
        }
        return queries.Select(q => q.Condition!.Value).ToArray();
    }

    /// <summary>The query images side by side: count·C·H·W values.</summary>
    public static float[] Images(IReadOnlyList<AttributionQuery> queries)
    {
        ArgumentNullException.ThrowIfNull(queries);
        return queries.SelectMany(q => q.Image).ToArray();
    }
}
