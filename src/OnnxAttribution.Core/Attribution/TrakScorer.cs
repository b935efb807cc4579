using System.Globalization;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// Answers attribution queries against a finalized store: query features with the store's own plan and projection,
/// x = (ΦᵀΦ + λI)⁻¹ φ_q, then one SIMD scan of the memory-mapped store for τ = Φx and its top k.
/// </summary>
internal sealed class TrakScorer : IDisposable
{
    private readonly TrakQueryHead _head;
    private readonly OrtStoreScan? _scan;

    private TrakScorer(FeatureStore store, TrakQueryHead head, SessionSettings? session = null)
    {
        Store = store;
        _head = head;
        store.UseQuantizedRows = session?.ExactScan != true;
        if (session?.ResolvedScan == ScanEngine.Onnx && head.Kernel == KernelForm.Primal)
        {
            _scan = OrtStoreScan.Open(store, session);
        }
    }

    /// <summary>The scan engine a query's best rows come from: <see cref="ScanEngine.Onnx"/> or <see cref="ScanEngine.Simd"/>.</summary>
    public ScanEngine Scan => _scan is null ? ScanEngine.Simd : ScanEngine.Onnx;

    /// <summary>The feature store scanned.</summary>
    public FeatureStore Store { get; }

    /// <summary>Query features with the store's plan and projection.</summary>
    public FeatureExtractor Extractor => _head.Extractor;

    /// <summary>The model folder the queries are featurized with.</summary>
    public ModelDirectory Model => _head.Model;

    /// <summary>Opens a finalized store with the model it was built from.</summary>
    /// <exception cref="StoreFormatException">The store is damaged or incomplete.</exception>
    /// <exception cref="AttributionException">The model is not the one the store was built from, or the store is not finalized.</exception>
    public static TrakScorer Open(string storeDirectory, string modelDirectory, SessionSettings? session = null)
    {
        var store = FeatureStore.Open(storeDirectory);
        GradientModel? model = null;
        try
        {
            model = new GradientModel(modelDirectory, PlanOf(store), ProjectionOf(store), session);
            return new TrakScorer(store, TrakQueryHead.ForStore(store, model, ownsModel: true, session?.QueryTimesteps ?? 0), session);
        }
        catch
        {
            model?.Dispose();
            store.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens a finalized store on an open model whose gradient graph has the store's projection kind; the scorer uses the
    /// model's sessions and leaves them open (dispose the model after the scorer).
    /// </summary>
    /// <exception cref="StoreFormatException">The store is damaged or incomplete.</exception>
    /// <exception cref="AttributionException">The model is not the one the store was built from, or the store is not finalized.</exception>
    public static TrakScorer Open(string storeDirectory, GradientModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var store = FeatureStore.Open(storeDirectory);
        try
        {
            return new TrakScorer(store, TrakQueryHead.ForStore(store, model, ownsModel: false));
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    /// <summary>The featurization plan recorded in the store's meta.json; errors name the store's file.</summary>
    /// <exception cref="AttributionException">An unknown measurement, pair normalisation or plan mode.</exception>
    public static FeaturizationPlan PlanOf(FeatureStore store) => InStore(store, PlanOf);

    /// <summary>The projection recorded in the store's meta.json; errors name the store's file.</summary>
    /// <exception cref="AttributionException">An unknown projector.</exception>
    public static ProjectionSettings ProjectionOf(FeatureStore store) => InStore(store, ProjectionOf);

    /// <summary>Reads a setting from the store's meta.json, putting the store's folder in front of the "meta.json: …" of an error.</summary>
    private static T InStore<T>(FeatureStore store, Func<StoreMeta, T> read)
    {
        ArgumentNullException.ThrowIfNull(store);
        try
        {
            return read(store.Meta);
        }
        catch (AttributionException e)
        {
            throw new AttributionException($"{store.Directory}{Path.DirectorySeparatorChar}{e.Message}", e);
        }
    }

    /// <summary>The featurization plan recorded in a store's meta.json.</summary>
    /// <exception cref="AttributionException">An unknown measurement, pair normalisation or plan mode.</exception>
    public static FeaturizationPlan PlanOf(StoreMeta meta)
    {
        ArgumentNullException.ThrowIfNull(meta);
        var measurement = Measurement.FromStoreName(meta.Measurement);
        bool normalize = false;
        if (meta.Settings.TryGetValue(TrakEngine.PairNormalizationSetting, out var n))
        {
            normalize = n == "l2" ? true : throw new AttributionException($"meta.json: field 'settings.{TrakEngine.PairNormalizationSetting}' is '{n}'; known: l2");
        }
        if (meta.Settings.TryGetValue(TrakEngine.PlanSetting, out var plan))
        {
            if (plan != TrakEngine.OneRandomTimestep || !meta.Settings.TryGetValue(TrakEngine.RoundSetting, out var round)
                || !long.TryParse(round, NumberStyles.None, CultureInfo.InvariantCulture, out long r))
            {
                throw new AttributionException($"meta.json: field 'settings.{TrakEngine.PlanSetting}' is '{plan}'; known: {TrakEngine.OneRandomTimestep} with a '{TrakEngine.RoundSetting}'");
            }
            return FeaturizationPlan.OneRandomTimestep(meta.NoiseSeed, r, measurement) with { NormalizePairs = normalize };
        }
        return new FeaturizationPlan(meta.Timesteps.ToArray(), meta.NoiseDraws, meta.NoiseSeed, measurement)
        {
            NormalizePairs = normalize,
        };
    }

    /// <summary>The projection recorded in a store's meta.json (<see cref="ProjectionSettings.FromSpec"/>).</summary>
    /// <exception cref="AttributionException">An unknown projector kind or distribution.</exception>
    public static ProjectionSettings ProjectionOf(StoreMeta meta)
    {
        ArgumentNullException.ThrowIfNull(meta);
        return ProjectionSettings.FromSpec(meta.Projector);
    }

    /// <summary>Query features φ_q: <paramref name="count"/> rows of k.</summary>
    /// <param name="images">The query images.</param>
    /// <param name="count">How many.</param>
    /// <param name="conditions">One condition value per query for a conditional model; empty otherwise.</param>
    public float[] Features(ReadOnlySpan<float> images, int count, ReadOnlySpan<long> conditions = default) => _head.Features(images, count, conditions);

    /// <summary>Query features φ_q of a batch of pairs (e.g. given noisy states, <see cref="GradientSource.Noisy"/>): one row of k per example.</summary>
    public float[] Features(ExampleBatch queries) => _head.Features(queries);

    /// <summary>Which kernel the store was finalized with; a dual one scores through <see cref="DualKernel"/>, not a scan.</summary>
    public KernelForm Kernel => _head.Kernel;

    /// <summary>The preconditioned queries (ΦᵀΦ + λI)⁻¹ φ_q, row by row (primal kernel only).</summary>
    /// <exception cref="InvalidOperationException">The store was finalized with the dual kernel, which yields scores, not k-vectors.</exception>
    public float[] Precondition(ReadOnlySpan<float> features, int count) => _head.Precondition(features, count);

    private static void RequireFinite(ReadOnlySpan<float> values, long length, Func<long, long, string, Exception> error) =>
        TrakQueryHead.RequireFinite(values, length, error);

    /// <summary>The error for a non-finite score of a finite preconditioned query: the store's row is the likely cause.</summary>
    private StoreFormatException NonFiniteScore(long query, long localRow, string value) => new(
        $"{Path.Combine(Store.Directory, StoreFiles.Features)}: query {query} scores {value} against row {Store.FirstRow + localRow}: that row holds " +
        $"non-finite values or values too large for float32 (a damaged store file); run 'verify --store {Store.Directory}'; no scores are returned");

    /// <summary>The top <paramref name="top"/> training rows for each of <paramref name="count"/> query images (one scan for all).</summary>
    /// <exception cref="UserInputException">A query's features are not finite (non-finite or extreme pixels).</exception>
    /// <exception cref="StoreFormatException">A returned score is not finite: a damaged row of the store.</exception>
    /// <param name="images">The query images.</param>
    /// <param name="count">How many.</param>
    /// <param name="top">How many rows to return per query.</param>
    /// <param name="conditions">One condition value per query for a conditional model; empty otherwise.</param>
    public TopKResult[] Attribute(ReadOnlySpan<float> images, int count, int top, ReadOnlySpan<long> conditions = default)
    {
        TopKResult[] results;
        if (Kernel == KernelForm.Dual)
        {
            var scores = Scores(images, count, conditions);
            using var span = QueryTrace.Start(QueryTrace.TopK);
            results = Store.WithoutRemoved(TopOfEach(scores, count, WithRemoved(top)), top);
        }
        else
        {
            var preconditioned = Precondition(Features(images, count, conditions), count);
            using var span = QueryTrace.Start(QueryTrace.Scan);
            results = _scan is null ? Store.TopK(preconditioned, count, top) : Store.WithoutRemoved(_scan.TopK(preconditioned, count, WithRemoved(top)), top);
        }
        for (int q = 0; q < results.Length; q++)
        {
            // NaN ranks last and +Infinity first: either among the top means a damaged row (the full scan is 'verify').
            int bad = Array.FindIndex(results[q].Scores, v => !float.IsFinite(v));
            if (bad >= 0)
            {
                throw NonFiniteScore(q, results[q].Indices[bad] - Store.FirstRow, results[q].Scores[bad].ToString(CultureInfo.InvariantCulture));
            }
        }
        return results;
    }

    /// <summary>How many rows to select so that <paramref name="top"/> answered rows remain once the removed rows are left out.</summary>
    private int WithRemoved(int top) => (int)Math.Min(top + (long)Store.RemovedRows.Count, Store.Rows);

    /// <summary>Every training row's score for each query image: count × N (a removed row's features are zero, so it scores 0).</summary>
    /// <exception cref="UserInputException">A query's features are not finite.</exception>
    /// <exception cref="StoreFormatException">A score is not finite: a damaged row of the store.</exception>
    /// <param name="images">The query images.</param>
    /// <param name="count">How many.</param>
    /// <param name="conditions">One condition value per query for a conditional model; empty otherwise.</param>
    public float[] Scores(ReadOnlySpan<float> images, int count, ReadOnlySpan<long> conditions = default) => Scores(Extractor.Source.Clean(images, count, conditions));

    /// <summary>Every training row's score for each query of a batch of pairs: count × N.</summary>
    public float[] Scores(ExampleBatch queries)
    {
        ArgumentNullException.ThrowIfNull(queries);
        int count = queries.Count;
        var scores = new float[count * Store.Rows];
        if (Kernel == KernelForm.Dual)
        {
            var features = Features(queries);
            using var span = QueryTrace.Start(QueryTrace.Dual);
            DualKernel.Scores(Store, _head.Preconditioner, features, count, scores);
        }
        else
        {
            var preconditioned = Precondition(Features(queries), count);
            using var span = QueryTrace.Start(QueryTrace.Scan);
            Store.Scores(preconditioned, count, scores);
        }
        RequireFinite(scores, Store.Rows, NonFiniteScore);
        return scores;
    }

    /// <summary>Each query's top rows of a count × N score matrix (a dual store is whole: row i is dataset row i).</summary>
    private TopKResult[] TopOfEach(float[] scores, int count, int top) =>
        Enumerable.Range(0, count).Select(q => Methods.TopKSelection.Select(scores.AsSpan(checked((int)(q * Store.Rows)), (int)Store.Rows), top)).ToArray();

    /// <inheritdoc/>
    public void Dispose()
    {
        _scan?.Dispose();
        _head.Dispose();
        Store.Dispose();
    }
}
