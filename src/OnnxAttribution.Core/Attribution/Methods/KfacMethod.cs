using OnnxAttribution.Core.Attribution.Influence;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// The settings K-FAC and EK-FAC read: <see cref="GradientSettings"/> (the measurement is the query's; training gradients
/// are always of the loss), the plan's K timesteps, the damping and the seed of the Fisher draws. Not the projector: the
/// training gradients are always projected factored.
/// </summary>
internal sealed record KfacSettings : GradientSettings
{
    /// <inheritdoc cref="MethodSettings.Timesteps"/>
    public int Timesteps { get; init; }

    /// <inheritdoc cref="MethodSettings.Damping"/>
    public double? Damping { get; init; }

    /// <inheritdoc cref="MethodSettings.Seed"/>
    public long Seed { get; init; }
}

/// <summary>What a kfac/ekfac store records in method.json.</summary>
/// <param name="Measurement">The query's measurement m (loss or square); training gradients are always of the loss.</param>
/// <param name="Damping">λ relative to each layer's mean eigenvalue.</param>
/// <param name="FisherSeed">Seed of the Monte-Carlo Fisher draws of the curvature.</param>
internal sealed record KfacStoreSettings(string Measurement, double Damping, long FisherSeed);

/// <summary>
/// K-FAC and EK-FAC influence functions for diffusion models (Mlodozeniec et al. 2024; EK-FAC: George et al. 2018,
/// Grosse et al. 2023): τ(q)ᵢ = ∇m(q)ᵀ (G + λI)⁻¹ ∇L(x⁽ⁱ⁾) (docs/methods.md, K-FAC / EK-FAC; the paper's sign flipped so a
/// positive score says training on xᵢ lowers the query's loss), G the Gauss–Newton matrix of the diffusion loss
/// approximated per weight matrix by a Kronecker product (K-FAC-expand over positions), inverted in its eigenbasis.
/// </summary>
/// <remarks>
/// <para>The store. Training gradients ∇L(x⁽ⁱ⁾) — the diffusion loss averaged over the plan's fixed (t, ε) pairs —
/// are kept as a factored-projection feature store (<see cref="TrakEngine.Featurize(FeaturizeOptions, IProgress{ValueTuple{long, long}}, CancellationToken)"/>): per layer vec(P_outᵀ Gᵢ P_in)
/// from the gradient graph's Kronecker factors, resumable and scanned by SIMD like TRAK's. Beside it, kfac.bin holds
/// each layer's eigenbases and eigenvalues (<see cref="CurvatureEstimator"/>: Monte-Carlo Fisher factors over every
/// training row at the same pairs; EK-FAC refits the eigenvalues in a second pass).</para>
/// <para>A query. Its per-layer gradient matrices V_ℓ = ∇_{W_ℓ} m(q) (same plan), the damped inverse per layer in full
/// dimension (<see cref="KroneckerLayer.InverseProduct"/>), then the same factored projection P_outᵀ V′ P_in, and one
/// scan: τᵢ = ⟨P(H⁻¹∇m), P(∇Lᵢ)⟩. E[P_in P_inᵀ] = I and E[P_out P_outᵀ] = I, so the Kronecker projection keeps
/// ⟨H⁻¹∇m, ∇Lᵢ⟩ in expectation; its variance falls with k. The paper's code instead stores full (8-bit quantised)
/// per-example gradients, which costs p bytes per row; here a row costs k floats whatever the model size.</para>
/// <para>Covered parameters: the Conv/Gemm/MatMul weights with factors (biases and normalisation parameters are not, on
/// either side). Curvature: A = E[(1/S) Σₛ aₛaₛᵀ], B = E[Σₛ gₛgₛᵀ] over examples × pairs, gₛ from cotangents √(2/D)·z.
/// Damping: per layer, λ = <see cref="MethodSettings.Damping"/> × the mean eigenvalue (the mean of λ_B,i·λ_A,j, or of Λ
/// for EK-FAC), as Grosse et al. 2023 damp each layer relative to its own curvature. Settings used: those of
/// <see cref="KfacSettings"/> (Damping &gt; 0; Measurement is the query's, loss by default; Seed seeds the Fisher draws).</para>
/// </remarks>
internal sealed class KfacMethod(string name, CurvatureKind kind, double defaultDamping) : AttributionMethod<KfacSettings>, IDampedMethod
{
    /// <inheritdoc/>
    public double DefaultDamping { get; } = defaultDamping;

    /// <inheritdoc/>
    public override string Name { get; } = name;

    /// <inheritdoc/>
    public override MethodCapabilities Capabilities { get; } = new() { ConditionalModels = true };

    /// <summary>K-FAC or EK-FAC: the eigenvalues that scale each layer's Kronecker eigenbasis.</summary>
    public CurvatureKind Kind { get; } = kind;

    /// <inheritdoc/>
    public override string Summary => Kind == CurvatureKind.Kfac
        ? "influence functions, ∇m(q)ᵀ(G + λI)⁻¹∇L(xᵢ) with K-FAC Gauss–Newton blocks; factored-projected training gradients"
        : "influence functions, ∇m(q)ᵀ(G + λI)⁻¹∇L(xᵢ) with EK-FAC (eigenvalues refit per coordinate); factored-projected training gradients";

    /// <inheritdoc/>
    protected override void Build(MethodBuildRequest request, KfacSettings settings, CancellationToken cancel)
    {
        double damping = settings.Damping ?? DefaultDamping;
        if (!(damping > 0))
        {
            throw new SettingException("Damping", damping, $"{Name} needs a positive damping (relative to each layer's mean eigenvalue)", DefaultDamping);
        }
        var schedule = ModelDirectory.Open(request.ModelDirectory).CreateSchedule();
        var plan = new FeaturizationPlan(FeaturizationPlan.Evenly(schedule.Timesteps, settings.Timesteps), settings.NoiseDraws, settings.NoiseSeed, MeasurementKind.Loss);
        var projection = new ProjectionSettings(ProjectorKind.Factored, settings.Distribution, settings.Dim, settings.ProjectionSeed);
        var progress = request.Progress;
        var options = new FeaturizeOptions
        {
            ModelDirectory = request.ModelDirectory,
            Data = request.Data,
            Subset = request.Source.Subset,
            Plan = plan,
            Projection = projection,
            DType = settings.DType,
            Method = Name,
            OutDirectory = request.OutDirectory,
            BatchSize = settings.BatchSize,
            Session = request.Session,
        };
        using (TrakEngine.Featurize(options, progress is null ? null : new SyncProgress<(long Done, long Total)>(p => progress.Report(new MethodProgress("gradients", p.Done, p.Total))), cancel))
        {
        }
        request.Source.Save(request.OutDirectory);
        CurvatureEstimator.Estimate(new CurvatureOptions
        {
            ModelDirectory = request.ModelDirectory,
            Data = request.Data,
            Plan = plan,
            Projection = projection,
            FisherSeed = settings.Seed,
            Kind = Kind,
            OutDirectory = request.OutDirectory,
            BatchSize = settings.BatchSize,
            Session = request.Session,
        }, progress, cancel);
        var measurement = settings.Measurement ?? MeasurementKind.Loss;
        MethodManifest.Of(Name, new KfacStoreSettings(measurement.ToString().ToLowerInvariant(), damping, settings.Seed)).Save(request.OutDirectory);
    }

    /// <summary>Records <paramref name="relativeDamping"/> in method.json: K-FAC applies λ at query time, so nothing else changes.</summary>
    public void Redamp(string storeDirectory, double relativeDamping, GramCache grams)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(relativeDamping);
        PreconditionerBuilder.Redamp(storeDirectory, Name, relativeDamping, [], grams);
    }

    /// <exception cref="UserInputException">The store is not a complete kfac/ekfac store of this kind.</exception>
    /// <exception cref="AttributionException">The model, the factors or the projection do not belong to the store.</exception>
    public override IAttributionScorer Open(string storeDirectory, string modelDirectory, SessionSettings session)
    {
        var manifest = MethodManifest.Require(storeDirectory, Name);
        var settings = manifest.SettingsAs<KfacStoreSettings>(storeDirectory);
        if (!Enum.TryParse<MeasurementKind>(settings.Measurement, ignoreCase: true, out var measurement) || !(settings.Damping > 0))
        {
            throw new UserInputException($"{Path.Combine(storeDirectory, StoreFiles.Method)}: settings measurement '{settings.Measurement}', " +
                $"damping {settings.Damping}; expected loss or square and a positive damping");
        }
        var store = FeatureStore.Open(storeDirectory);
        GradientModel? model = null;
        try
        {
            var training = TrakScorer.PlanOf(store);
            model = new GradientModel(modelDirectory, training with { Measurement = measurement }, TrakScorer.ProjectionOf(store), session, kroneckerFactors: true);
            model.RequireStore(store);
            if (model.Extractor.Factored is null)
            {
                throw new AttributionException($"{storeDirectory}: meta.json says projector '{store.Meta.Projector.Kind}'; a {Name} store is featurized with the factored projector");
            }
            var path = Path.Combine(storeDirectory, StoreFiles.Kfac);
            var curvature = KroneckerCurvature.Load(path);
            var shapes = LayerGradients.Shapes(model.Extractor.Source);
            var expected = CurvatureEstimator.Fingerprint(store.Meta.ModelFingerprint, DatasetConditions.DataIdentity(store.Meta), store.Meta.Rows, training,
                settings.FisherSeed, shapes);
            if (!curvature.Fingerprint.AsSpan().SequenceEqual(expected) || curvature.Kind != Kind)
            {
                throw new AttributionException($"{path}: {curvature.Kind} factors of other inputs than this {Name} store's (model, data, plan, Fisher seed or layers); build the store again");
            }
            return new Scorer(Name, store, model, curvature, settings.Damping);
        }
        catch
        {
            model?.Dispose();
            store.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The query side: per-layer query gradients, the damped inverse of each layer's Kronecker block in full dimension,
    /// the store's factored projection, one scan.
    /// </summary>
    private sealed class Scorer(string method, FeatureStore store, GradientModel model, KroneckerCurvature curvature, double damping) : IAttributionScorer
    {
        /// <summary>Queries whose per-layer gradients are held at once.</summary>
        private const int QueryBatch = 16;

        public string Method { get; } = method;

        public long Rows => store.Rows;

        public float[] Scores(IReadOnlyList<AttributionQuery> queries, CancellationToken cancel = default)
        {
            var scores = new float[queries.Count * store.Rows];
            store.Scores(Features(queries, cancel), queries.Count, scores);
            return scores;
        }

        public TopKResult[] TopK(IReadOnlyList<AttributionQuery> queries, int top, CancellationToken cancel = default) =>
            store.TopK(Features(queries, cancel), queries.Count, top);

        /// <summary>P(H⁻¹ ∇m(q)) for every query: count × k.</summary>
        private float[] Features(IReadOnlyList<AttributionQuery> queries, CancellationToken cancel)
        {
            ArgumentNullException.ThrowIfNull(queries);
            var images = TrakMethod.Images(queries);
            var conditions = TrakMethod.Conditions(queries);
            var source = model.Extractor.Source;
            var projector = model.Extractor.Factored!;
            int d = source.ExampleLength, k = store.Dim;
            var features = new float[queries.Count * k];
            for (int start = 0; start < queries.Count; start += QueryBatch)
            {
                cancel.ThrowIfCancellationRequested();
                int count = Math.Min(QueryBatch, queries.Count - start);
                var gradients = LayerGradients.Compute(source, images.AsSpan(start * d, count * d), count,
                    conditions.Length == 0 ? default : conditions.AsSpan(start, count));
                for (int q = 0; q < count; q++)
                {
                    var preconditioned = curvature.Layers.Select((layer, l) =>
                    {
                        int size = layer.Shape.OutDim * layer.Shape.InDim;
                        var v = gradients[l].AsSpan(q * size, size);
                        var x = new double[size];
                        for (int e = 0; e < size; e++)
                        {
                            x[e] = v[e];
                        }
                        var y = new double[size];
                        layer.InverseProduct(x, damping, y);
                        return (ReadOnlyMemory<float>)y.Select(e => (float)e).ToArray();
                    }).ToList();
                    projector.ProjectDense(preconditioned, features.AsSpan((start + q) * k, k));
                }
            }
            return features;
        }

        public void Dispose()
        {
            model.Dispose();
            store.Dispose();
        }
    }
}
