using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// The raw gradient-similarity baseline (docs/methods.md, "Baselines every table must carry"; the Grad-Cos baseline of D-TRAK's
/// comparisons, Zheng et al. 2024): τ(q)ᵢ = cos(φ_q, φᵢ) = φ_qᵀφᵢ / (‖φ_q‖ ‖φᵢ‖), with φ the projected
/// gradient of the diffusion loss averaged over the plan's timesteps (the TRAK features, no preconditioner).
/// </summary>
/// <remarks>
/// The store is a TRAK feature store plus <see cref="StoreFiles.Norms"/>, the row norms ‖φᵢ‖ (computed in float64 at build), so a query
/// is one scan of the unnormalised rows with φ_q/‖φ_q‖ and a division per row. The projection keeps cosines to within the
/// usual Johnson–Lindenstrauss distortion of the unprojected gradients'. A row or query with a zero feature scores 0.
/// </remarks>
internal sealed class GradientCosineMethod : AttributionMethod<GradientFeatureSettings>
{
    /// <inheritdoc/>
    public override string Name => "gradient-cosine";

    /// <inheritdoc/>
    public override MethodCapabilities Capabilities { get; } = new() { ConditionalModels = true };

    /// <inheritdoc/>
    public override string Summary => "cosine similarity of projected diffusion-loss gradients (no preconditioner)";

    /// <inheritdoc/>
    protected override void Build(MethodBuildRequest request, GradientFeatureSettings settings, CancellationToken cancel)
    {
        var options = TrakMethod.Options(request, settings, Name, MeasurementKind.Loss);
        float[] norms;
        using (var store = TrakEngine.Featurize(options, MethodProgress.Of(request.Progress, "featurize"), cancel))
        {
            norms = RowNorms(store, MethodProgress.Of(request.Progress, "norms"));
        }
        request.Source.Save(request.OutDirectory);
        string normsSha256 = RowColumn.Write(request.OutDirectory, StoreFiles.Norms, norms);
        MethodManifest.Of(Name, new CosineStoreSettings(Measurement.StoreName(options.Plan.Measurement), normsSha256)).Save(request.OutDirectory);
    }

    /// <summary>‖φᵢ‖ of every row held, accumulated in float64.</summary>
    public static float[] RowNorms(FeatureStore store, IProgress<(long Done, long Total)>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        var norms = new float[store.Rows];
        var row = new float[store.Dim];
        for (long i = 0; i < store.Rows; i++)
        {
            store.ReadRow(store.FirstRow + i, row);
            double s = 0;
            foreach (float v in row)
            {
                s += (double)v * v;
            }
            norms[i] = (float)Math.Sqrt(s);
            if ((i + 1) % 4096 == 0 || i + 1 == store.Rows)
            {
                progress?.Report((i + 1, store.Rows));
            }
        }
        return norms;
    }

    /// <inheritdoc/>
    public override IAttributionScorer Open(string storeDirectory, string modelDirectory, SessionSettings session)
    {
        var settings = MethodManifest.Require(storeDirectory, Name).SettingsAs<CosineStoreSettings>(storeDirectory);
        var store = FeatureStore.Open(storeDirectory);
        GradientModel? model = null;
        try
        {
            model = GradientModel.ForStore(store, modelDirectory, session);
            return new Scorer(store, model, RowColumn.Read(storeDirectory, StoreFiles.Norms, store.Rows, settings.NormsSha256));
        }
        catch
        {
            model?.Dispose();
            store.Dispose();
            throw;
        }
    }

    /// <summary>method.json settings of a gradient-cosine store.</summary>
    private sealed record CosineStoreSettings(string Measurement, string NormsSha256);

    /// <summary>Query features, normalised, one scan of the store, each row divided by its norm.</summary>
    private sealed class Scorer(FeatureStore store, GradientModel model, float[] norms) : IAttributionScorer
    {
        public string Method => "gradient-cosine";

        public long Rows => store.Rows;

        public float[] Scores(IReadOnlyList<AttributionQuery> queries, CancellationToken cancel = default)
        {
            int count = queries.Count, k = store.Dim, n = norms.Length;
            var phi = new float[count * k];
            model.Extractor.Extract(TrakMethod.Images(queries), count, phi, conditions: TrakMethod.Conditions(queries));
            for (int q = 0; q < count; q++)
            {
                var f = phi.AsSpan(q * k, k);
                float norm = System.Numerics.Tensors.TensorPrimitives.Norm(f);
                System.Numerics.Tensors.TensorPrimitives.Multiply(f, norm > 0 ? 1f / norm : 0f, f);
            }
            var scores = new float[count * n];
            store.Scores(phi, count, scores);
            for (int q = 0; q < count; q++)
            {
                for (int i = 0; i < n; i++)
                {
                    scores[(q * n) + i] = norms[i] > 0 ? scores[(q * n) + i] / norms[i] : 0f;
                }
            }
            return scores;
        }

        public void Dispose()
        {
            model.Dispose();
            store.Dispose();
        }
    }
}
