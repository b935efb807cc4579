using System.Globalization;
using OnnxAttribution.Core.Projection;
using OnnxAttribution.Core.Runtime;
using OnnxAttribution.Core.Store;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// Answers attribution queries against a finalized store: query features with the store's own plan and projection,
/// x = (ΦᵀΦ + λI)⁻¹ φ_q, then one SIMD scan of the memory-mapped store for τ = Φx and its top k.
/// </summary>
public sealed class TrakScorer : IDisposable
{
    private readonly TrakModel _model;
    private readonly Preconditioner _preconditioner;

    private TrakScorer(FeatureStore store, TrakModel model, Preconditioner preconditioner)
    {
        Store = store;
        _model = model;
        _preconditioner = preconditioner;
    }

    public FeatureStore Store { get; }

    public FeatureExtractor Extractor => _model.Extractor;

    public ModelDirectory Model => _model.Directory;

    /// <summary>Opens a finalized store with the model it was built from.</summary>
    /// <exception cref="StoreFormatException">The store is damaged or incomplete.</exception>
    /// <exception cref="AttributionException">The model is not the one the store was built from, or the store is not finalized.</exception>
    public static TrakScorer Open(string storeDirectory, string modelDirectory, SessionSettings? session = null)
    {
        var store = FeatureStore.Open(storeDirectory);
        TrakModel? model = null;
        try
        {
            var meta = store.Meta;
            var plan = PlanOf(meta);
            model = new TrakModel(modelDirectory, plan, ProjectionOf(meta), session);
            model.RequireStore(storeDirectory, store);
            var pre = Preconditioner.Load(Path.Combine(storeDirectory, TrakEngine.PreconditionerFile), store.Dim, TrakEngine.StoreFingerprint(storeDirectory));
            return new TrakScorer(store, model, pre);
        }
        catch
        {
            model?.Dispose();
            store.Dispose();
            throw;
        }
    }

    /// <summary>The featurization plan recorded in a store's meta.json.</summary>
    public static FeaturizationPlan PlanOf(StoreMeta meta) => new(
        meta.Timesteps.ToArray(),
        meta.NoiseDraws,
        meta.NoiseSeed,
        meta.Measurement switch
        {
            "diffusion-loss" => MeasurementKind.Loss,
            "squared-output-norm" => MeasurementKind.Square,
            _ => throw new AttributionException($"meta.json: field 'measurement' is '{meta.Measurement}'; known: diffusion-loss, squared-output-norm"),
        });

    /// <summary>The projection recorded in a store's meta.json.</summary>
    public static ProjectionSettings ProjectionOf(StoreMeta meta)
    {
        var settings = meta.Projector.Settings;
        var kind = meta.Projector.Kind switch
        {
            "dense" => ProjectorKind.Dense,
            "factored" => ProjectorKind.Factored,
            _ => throw new AttributionException($"meta.json: field 'projector.kind' is '{meta.Projector.Kind}'; known: dense, factored"),
        };
        var distribution = settings.TryGetValue("distribution", out var d) && d == "gaussian" ? ProjectionKind.Gaussian : ProjectionKind.Rademacher;
        int requested = settings.TryGetValue("requestedDim", out var r) ? int.Parse(r, CultureInfo.InvariantCulture) : meta.Projector.Dim;
        return new ProjectionSettings(kind, distribution, requested, meta.Projector.Seed);
    }

    /// <summary>Query features φ_q: <paramref name="count"/> rows of k.</summary>
    public float[] Features(ReadOnlySpan<float> images, int count)
    {
        var phi = new float[count * Store.Dim];
        _model.Extractor.Extract(images, count, phi);
        return phi;
    }

    /// <summary>The preconditioned queries (ΦᵀΦ + λI)⁻¹ φ_q, row by row.</summary>
    public float[] Precondition(ReadOnlySpan<float> features, int count)
    {
        int k = Store.Dim;
        var x = new float[count * k];
        for (int q = 0; q < count; q++)
        {
            _preconditioner.Solve(features.Slice(q * k, k), x.AsSpan(q * k, k));
        }
        return x;
    }

    /// <summary>The top <paramref name="top"/> training rows for each of <paramref name="count"/> query images (one scan for all).</summary>
    public TopKResult[] Attribute(ReadOnlySpan<float> images, int count, int top) =>
        Store.TopK(Precondition(Features(images, count), count), count, top);

    /// <summary>Every training row's score for each query image: count × N.</summary>
    public float[] Scores(ReadOnlySpan<float> images, int count)
    {
        var scores = new float[count * Store.Rows];
        Store.Scores(Precondition(Features(images, count), count), count, scores);
        return scores;
    }

    public void Dispose()
    {
        _model.Dispose();
        Store.Dispose();
    }
}
