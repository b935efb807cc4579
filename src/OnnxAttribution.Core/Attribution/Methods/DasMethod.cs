using System.Numerics.Tensors;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// DAS, the Diffusion Attribution Score (Lin et al. 2024, "Diffusion Attribution Score: Evaluating Training Data Influence in
/// Diffusion Models"), as its public code computes it:
/// τ(q)ᵢ = φ_qᵀ (ΦᵀΦ + λI)⁻¹ φᵢ · rᵢ, with φ = Pᵀ (1/K) Σ_t g_t / ‖g_t‖, g_t = ∇_θ mean(ε̂_θ(x_t, t)) at the plan's K timesteps
/// (t = 0, T/K, …, one fixed noise draw each), P a dense projection to k (4096 by default), and rᵢ = Lᵢ / mean_j Lⱼ the
/// normalised residual: example i's diffusion loss at the same (t, ε) pairs over the mean of the training set.
/// </summary>
/// <remarks>
/// <para>The store is a TRAK feature store (<see cref="TrakEngine"/>, meta.json records the mean-output measurement and the
/// per-pair normalisation) with <c>preconditioner.bin</c>, <c>losses.npy</c> (Lᵢ, written with the features from the same
/// forward passes) and <see cref="StoreFiles.Residuals"/> (rᵢ).</para>
/// <para>Where this differs from the paper's DAS formula, and why:</para>
/// <list type="bullet">
/// <item><description>The paper compares outputs directly: the Newton-step prediction of how the whole output
/// ε̂_θ(x_t, t) ∈ ℝᴰ of the query changes when example i is removed (built from the Jacobians of every output dimension and
/// example i's residual vector ε − ε̂), measured by its squared norm over output dimensions. Here, as in the public code, the
/// output is projected onto its mean — the paper's speed-up of projecting the output dimension, taken to one dimension — so the
/// Jacobians become gradients of one scalar and the predicted change is the signed kernel product. A D-dimensional version
/// would cost D gradient-graph runs per example.</description></item>
/// <item><description>The residual enters as the scalar rᵢ (the code's normalised residual error), not as the residual
/// vector contracted with the Jacobian. rᵢ ≥ 0, so it rescales an example's score without flipping its sign: an example the
/// model fits badly moves the output more when removed.</description></item>
/// <item><description>No leverage correction 1/(1 − hᵢ) (TRAK drops it as well; the code's leverage variant is not
/// built).</description></item>
/// <item><description>Per-timestep gradients are L2-normalised before the average over timesteps (the code's choice, not part
/// of the formula): otherwise the timesteps with the largest gradients decide the feature, the "dominating norm" effect
/// Diffusion-ReTrac reports.</description></item>
/// <item><description>λ is relative to the mean diagonal of ΦᵀΦ and is a setting chosen on validation queries, not by LDS on
/// the evaluation queries.</description></item>
/// </list>
/// <para>Sign: positive when the query's and the example's mean-output gradients agree under the kernel, the convention of
/// D-TRAK's output-only measurements; the LDS compares it with the negated loss like every other method.</para>
/// </remarks>
internal sealed class DasMethod : AttributionMethod<TrakSettings>, IDampedMethod
{
    /// <inheritdoc/>
    public override string Name => "das";

    /// <inheritdoc/>
    public override MethodCapabilities Capabilities { get; } = new() { ConditionalModels = true, QueryTimesteps = true, DenseProjectorOnly = true };

    /// <inheritdoc/>
    public double DefaultDamping => LdsChosenDamping.Das;

    /// <inheritdoc/>
    public override string Summary => "projected gradients of the mean output, L2-normalised per timestep, kernel-preconditioned, times each example's normalised loss";

    /// <summary>The featurize options a build with <paramref name="request"/> uses (its settings bound by <see cref="AttributionMethod{TSettings}.Bind"/>).</summary>
    /// <exception cref="SettingException">The settings ask for the factored projection.</exception>
    public FeaturizeOptions Options(MethodBuildRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return Options(request, Bind(request.Settings));
    }

    /// <summary>The featurize options of a build: the settings' plan and dense projection, the mean-output measurement unless
    /// one is named, per-pair normalisation, losses recorded.</summary>
    /// <exception cref="SettingException">The settings ask for the factored projection.</exception>
    private FeaturizeOptions Options(MethodBuildRequest request, TrakSettings settings)
    {
        AttributionMethods.CheckProjector(this, settings.Projector);
        var options = TrakMethod.Options(request, settings, Name, MeasurementKind.Mean);
        return options with { Plan = options.Plan with { NormalizePairs = true }, RecordLosses = true };
    }

    /// <inheritdoc/>
    protected override void Build(MethodBuildRequest request, TrakSettings settings, CancellationToken cancel)
    {
        var options = Options(request, settings);
        float[] residuals;
        using (var store = TrakEngine.Featurize(options, MethodProgress.Of(request.Progress, "featurize"), cancel))
        {
            residuals = Residuals(TrakEngine.ReadLosses(store), Path.Combine(request.OutDirectory, StoreFiles.Losses));
        }
        request.Source.Save(request.OutDirectory);
        string residualsSha256 = RowColumn.Write(request.OutDirectory, StoreFiles.Residuals, residuals);
        double damping = settings.Damping ?? DefaultDamping;
        PreconditionerBuilder.Finalize(request.OutDirectory, damping, MethodProgress.Of(request.Progress, "finalize"));
        MethodManifest.Of(Name, new DasStoreSettings(Measurement.StoreName(options.Plan.Measurement), damping, residualsSha256))
            .Save(request.OutDirectory);
    }

    /// <summary>rᵢ = Lᵢ / mean_j Lⱼ (the mean in float64).</summary>
    /// <exception cref="AttributionException">The mean loss is not positive (nothing to normalise by).</exception>
    public static float[] Residuals(ReadOnlySpan<float> losses, string source)
    {
        double mean = 0;
        foreach (float l in losses)
        {
            mean += l;
        }
        mean /= Math.Max(1, losses.Length);
        if (!(mean > 0))
        {
            throw new AttributionException($"{source}: the mean diffusion loss over {losses.Length} training rows is {mean}; DAS divides by it");
        }
        var residuals = new float[losses.Length];
        for (int i = 0; i < residuals.Length; i++)
        {
            residuals[i] = (float)(losses[i] / mean);
        }
        return residuals;
    }

    /// <inheritdoc/>
    public override IAttributionScorer Open(string storeDirectory, string modelDirectory, SessionSettings session)
    {
        var settings = MethodManifest.Require(storeDirectory, Name).SettingsAs<DasStoreSettings>(storeDirectory);
        var trak = TrakScorer.Open(storeDirectory, modelDirectory, session);
        try
        {
            return new Scorer(trak, RowColumn.Read(storeDirectory, StoreFiles.Residuals, trak.Store.Rows, settings.ResidualsSha256));
        }
        catch
        {
            trak.Dispose();
            throw;
        }
    }

    /// <summary>Finalizes the store's features anew with <paramref name="relativeDamping"/> (<see cref="PreconditionerBuilder.Redamp"/>).</summary>
    public void Redamp(string storeDirectory, double relativeDamping, GramCache grams) =>
        PreconditionerBuilder.Redamp(storeDirectory, Name, relativeDamping, [storeDirectory], grams);

    /// <summary>method.json settings of a DAS store.</summary>
    private sealed record DasStoreSettings(string Measurement, double Damping, string ResidualsSha256);

    /// <summary>The TRAK-kernel scores of <see cref="TrakScorer"/>, row i multiplied by rᵢ.</summary>
    private sealed class Scorer(TrakScorer trak, float[] residuals) : IAttributionScorer
    {
        public string Method => "das";

        public long Rows => trak.Store.Rows;

        public float[] Scores(IReadOnlyList<AttributionQuery> queries, CancellationToken cancel = default)
        {
            var scores = trak.Scores(TrakMethod.Images(queries), queries.Count, TrakMethod.Conditions(queries));
            int n = residuals.Length;
            for (int q = 0; q < queries.Count; q++)
            {
                var row = scores.AsSpan(q * n, n);
                TensorPrimitives.Multiply(row, residuals, row);
            }
            return scores;
        }

        public void Dispose() => trak.Dispose();
    }
}
