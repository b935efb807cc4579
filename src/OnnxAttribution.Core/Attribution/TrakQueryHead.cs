using System.Globalization;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// The query side of a finalized TRAK-family store: the model's sessions with the plan and projection of the store's
/// meta.json, and its preconditioner.bin. Computes a query's features φ_q and (ΦᵀΦ + λI)⁻¹ φ_q; scanning the rows is
/// someone else's (<see cref="TrakScorer"/> on one machine, the cluster's shard grains).
/// </summary>
/// <remarks>
/// <see cref="OpenWithoutFeatures"/> needs the store's small files only (meta.json, preconditioner.bin, checksums.json), so
/// a cluster's head does not hold the merged features.npy. Not thread-safe (one set of ONNX Runtime sessions).
/// </remarks>
public sealed class TrakQueryHead : IDisposable
{
    private readonly GradientModel _model;
    private readonly bool _ownsModel;

    private TrakQueryHead(string directory, StoreMeta meta, GradientModel model, bool ownsModel, FeatureExtractor extractor, Preconditioner preconditioner)
    {
        Directory = directory;
        Meta = meta;
        _model = model;
        _ownsModel = ownsModel;
        Extractor = extractor;
        Preconditioner = preconditioner;
    }

    /// <summary>The store folder whose meta.json and preconditioner.bin were read.</summary>
    public string Directory { get; }

    /// <summary>The store's meta.json.</summary>
    public StoreMeta Meta { get; }

    /// <summary>k, the feature length.</summary>
    public int Dim => Meta.Projector.Dim;

    /// <summary>Query features with the store's plan and projection.</summary>
    internal FeatureExtractor Extractor { get; }

    /// <summary>The store's kernel inverse.</summary>
    public Preconditioner Preconditioner { get; }

    /// <summary>Which kernel the store was finalized with.</summary>
    public KernelForm Kernel => Preconditioner.Form;

    /// <summary>The model folder the queries are featurized with.</summary>
    public ModelDirectory Model => _model.Directory;

    /// <summary>
    /// The head of an open store: preconditioner.bin is checked against its checksum and against the fingerprint of the
    /// store's features (<see cref="PreconditionerBuilder.StoreFingerprint"/>).
    /// </summary>
    /// <param name="store">The open, finalized store (its rows are not read here beyond the fingerprint's samples).</param>
    /// <param name="model">The model, opened for the store's projection kind.</param>
    /// <param name="ownsModel">Whether disposing the head disposes the model.</param>
    /// <param name="queryTimesteps">The fast query setting (0: the store's timesteps).</param>
    /// <exception cref="AttributionException">The model is not the store's, or the store is not finalized.</exception>
    public static TrakQueryHead ForStore(FeatureStore store, GradientModel model, bool ownsModel, int queryTimesteps = 0)
    {
        ArgumentNullException.ThrowIfNull(store);
        return Create(store.Directory, store.Meta, store.Rows, model, ownsModel, queryTimesteps, PreconditionerBuilder.StoreFingerprint(store.Directory));
    }

    /// <summary>
    /// Opens the head of a finalized, whole store from its small files alone: meta.json and preconditioner.bin, both checked
    /// against the store's checksums.json (which finalize wrote, and which must record them); features.npy need not be there.
    /// </summary>
    /// <remarks>
    /// The fingerprint preconditioner.bin records of the features it was built from cannot be recomputed without them: it is
    /// taken as recorded, and the file's checksum is what ties it to the store (a copy of the merged store's small files).
    /// Whether the rows being scanned elsewhere are that store's rows is the scanner's to check (the cluster compares each
    /// shard's meta.json with the head's).
    /// </remarks>
    /// <exception cref="StoreFormatException">A file is missing, damaged, or not recorded in checksums.json.</exception>
    /// <exception cref="AttributionException">The store is a shard or not finalized, or the model is not the store's.</exception>
    public static TrakQueryHead OpenWithoutFeatures(string storeDirectory, string modelDirectory, SessionSettings? session = null)
    {
        ArgumentNullException.ThrowIfNull(storeDirectory);
        if (!System.IO.Directory.Exists(storeDirectory))
        {
            throw new StoreFormatException($"{storeDirectory}: store folder not found (the head needs the merged store's meta.json, preconditioner.bin and checksums.json)");
        }
        RequireRecorded(storeDirectory, StoreFiles.Meta, StoreFiles.Preconditioner);
        StoreChecksums.RequireFile(storeDirectory, StoreFiles.Meta, RecopyRemedy);
        var meta = StoreMeta.Load(Path.Combine(storeDirectory, StoreFiles.Meta));
        if (meta.Shard != ShardSpec.Whole)
        {
            throw new AttributionException($"{Path.Combine(storeDirectory, StoreFiles.Meta)}: shard {meta.Shard.Index} of {meta.Shard.Count}; " +
                "a query head needs the merged (whole) store's small files: merge the shards and finalize the merged store");
        }
        var model = new GradientModel(modelDirectory, TrakScorer.PlanOf(meta), TrakScorer.ProjectionOf(meta), session);
        try
        {
            return Create(storeDirectory, meta, meta.Rows, model, ownsModel: true, session?.QueryTimesteps ?? 0, featuresFingerprint: null);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private const string RecopyRemedy = "copy the merged store's meta.json, preconditioner.bin and checksums.json again (after 'finalize' on it)";

    /// <summary>Throws unless checksums.json records every one of <paramref name="names"/> (Create then checks preconditioner.bin by it).</summary>
    private static void RequireRecorded(string directory, params string[] names)
    {
        var sums = StoreChecksums.TryLoad(directory);
        foreach (string name in names.Where(n => sums is null || !sums.Files.ContainsKey(n)))
        {
            throw new StoreFormatException($"{Path.Combine(directory, StoreFiles.Checksums)}: {(sums is null ? "missing" : $"records no {name}")}; " +
                $"without features.npy the head checks {name} by it alone: {RecopyRemedy}");
        }
    }

    private static TrakQueryHead Create(string directory, StoreMeta meta, long rows, GradientModel model, bool ownsModel, int queryTimesteps, byte[]? featuresFingerprint)
    {
        var projection = TrakScorer.ProjectionOf(meta);
        if (projection.Kind != model.Projector)
        {
            throw new AttributionException($"{directory}: the store has {projection.Kind} features; the model was opened for {model.Projector}");
        }
        var extractor = model.ExtractorFor(TrakScorer.PlanOf(meta).ForQueries(queryTimesteps), projection);
        model.RequireStore(meta, directory, extractor);
        StoreChecksums.RequireFile(directory, StoreFiles.Preconditioner, "run 'finalize' again");
        string path = Path.Combine(directory, StoreFiles.Preconditioner);
        var pre = featuresFingerprint is null
            ? Preconditioner.LoadRecorded(path, meta.Projector.Dim, rows)
            : Preconditioner.Load(path, meta.Projector.Dim, rows, featuresFingerprint);
        return new TrakQueryHead(directory, meta, model, ownsModel, extractor, pre);
    }

    /// <summary>Query features φ_q: <paramref name="count"/> rows of k.</summary>
    /// <param name="images">The query images.</param>
    /// <param name="count">How many.</param>
    /// <param name="conditions">One condition value per query for a conditional model; empty otherwise.</param>
    public float[] Features(ReadOnlySpan<float> images, int count, ReadOnlySpan<long> conditions = default) =>
        Features(Extractor.Source.Clean(images, count, conditions));

    /// <summary>Query features φ_q of a batch of pairs (e.g. given noisy states, <see cref="GradientSource.Noisy"/>): one row of k per example.</summary>
    /// <exception cref="UserInputException">A feature is not finite (non-finite or extreme pixels).</exception>
    internal float[] Features(ExampleBatch queries)
    {
        ArgumentNullException.ThrowIfNull(queries);
        using var span = QueryTrace.Start(QueryTrace.Features);
        var phi = new float[queries.Count * Dim];
        Extractor.Extract(queries, phi);
        RequireFinite(phi, Dim, (q, i, v) => new UserInputException(
            $"query {q}: its feature {i} is {v}: the query image holds non-finite or extreme pixel values (expected finite values in [-1, 1]), or the model overflows on it; no scores are returned"));
        return phi;
    }

    /// <summary>The preconditioned queries (ΦᵀΦ + λI)⁻¹ φ_q, row by row (primal kernel only).</summary>
    /// <exception cref="InvalidOperationException">The store was finalized with the dual kernel, which yields scores, not k-vectors.</exception>
    /// <exception cref="AttributionException">A preconditioned value is not finite.</exception>
    public float[] Precondition(ReadOnlySpan<float> features, int count)
    {
        using var span = QueryTrace.Start(QueryTrace.Solve);
        int k = Dim;
        var x = new float[count * k];
        for (int q = 0; q < count; q++)
        {
            Preconditioner.Solve(features.Slice(q * k, k), x.AsSpan(q * k, k));
        }
        RequireFinite(x, k, (q, i, v) => new AttributionException(
            $"query {q}: its preconditioned feature {i} is {v}: the query's features are too large for float32 after (ΦᵀΦ + λI)⁻¹, " +
            $"or {Path.Combine(Directory, StoreFiles.Preconditioner)} is damaged (run 'verify --store {Directory}'); no scores are returned"));
        return x;
    }

    /// <summary>
    /// Throws <paramref name="error"/>(item, index in item, value) for the first NaN or ±Infinity in <paramref name="values"/>
    /// (items of <paramref name="length"/> values): a non-finite score must never be ranked as if it were one.
    /// </summary>
    internal static void RequireFinite(ReadOnlySpan<float> values, long length, Func<long, long, string, Exception> error)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                throw error(i / length, i % length, values[i].ToString(CultureInfo.InvariantCulture));
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_ownsModel)
        {
            _model.Dispose();
        }
    }
}
