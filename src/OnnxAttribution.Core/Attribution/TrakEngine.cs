using OnnxAttribution.Core.Data;
using OnnxAttribution.Core.Gradients;
using OnnxAttribution.Core.Runtime;
using OnnxAttribution.Core.Store;

namespace OnnxAttribution.Core.Attribution;

/// <summary>What to featurize and where: the settings every row of the store depends on, plus batching.</summary>
public sealed record FeaturizeOptions
{
    public required string ModelDirectory { get; init; }

    /// <summary>The training images, already subset (row i of the store is image i of this dataset).</summary>
    public required ImageDataset Data { get; init; }

    /// <summary>How the subset was chosen (recorded in meta.json).</summary>
    public string Subset { get; init; } = "all";

    public required FeaturizationPlan Plan { get; init; }

    public required ProjectionSettings Projection { get; init; }

    public StoreDType DType { get; init; } = StoreDType.Float32;

    /// <summary>The method the store is for (a label in meta.json, e.g. "trak" or "d-trak").</summary>
    public string Method { get; init; } = "trak";

    public required string OutDirectory { get; init; }

    public ShardSpec Shard { get; init; } = ShardSpec.Whole;

    /// <summary>Examples per gradient-graph call; does not change the result.</summary>
    public int BatchSize { get; init; } = 16;

    public SessionSettings Session { get; init; } = SessionSettings.Default;
}

/// <summary>Open sessions on a model directory for featurizing or querying with one plan and projection.</summary>
public sealed class TrakModel : IDisposable
{
    private readonly OnnxDenoiser _forward;
    private readonly VjpSession _vjp;

    public TrakModel(string modelDirectory, FeaturizationPlan plan, ProjectionSettings projection, SessionSettings? session = null)
    {
        Directory = ModelDirectory.Open(modelDirectory);
        _forward = Directory.OpenDenoiser(session);
        try
        {
            // The store is tied to the model's gradient graph (vjp.onnx), but featurizing runs a graph specialised to the
            // projection, derived from forward.onnx with the same rules: only per-example gradients for dense, only the
            // Kronecker factors for factored. ONNX Runtime runs every node of a graph whatever outputs are asked for.
            Fingerprint = StoreMeta.FingerprintFile(Directory.RequireVjp());
            var forward = Onnx.OnnxModelFile.Load(Directory.RequireForward());
            var graph = Onnx.Differentiation.VjpBuilder.Build(forward, new Onnx.Differentiation.VjpOptions
            {
                Parameters = Directory.Metadata.Parameters.Count > 0 ? Directory.Metadata.Parameters.Select(p => p.Name).ToList() : null,
                PerExampleGradients = projection.Kind == ProjectorKind.Dense,
                KroneckerFactors = projection.Kind == ProjectorKind.Factored,
            });
            _vjp = VjpSession.FromBytes(Google.Protobuf.MessageExtensions.ToByteArray(graph), $"{Directory.VjpPath} ({projection.Kind.ToString().ToLowerInvariant()} features)", session);
            Extractor = new FeatureExtractor(new GradientSource(_forward, _vjp, Directory.CreateSchedule(), plan), projection);
        }
        catch
        {
            _forward.Dispose();
            _vjp?.Dispose();
            throw;
        }
    }

    public ModelDirectory Directory { get; }

    /// <summary>SHA-256 of vjp.onnx: the store's model fingerprint.</summary>
    public string Fingerprint { get; }

    public FeatureExtractor Extractor { get; }

    /// <summary>Checks that the dataset's images have the model's channels and size.</summary>
    /// <exception cref="UserInputException">They do not.</exception>
    public void RequireGeometry(ImageDataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var m = Directory.Metadata;
        if (data.Channels != m.Channels || data.Height != m.ImageSize || data.Width != m.ImageSize)
        {
            throw new UserInputException($"dataset {data.Name} has images {data.Channels}×{data.Height}×{data.Width}; the model takes {m.Channels}×{m.ImageSize}×{m.ImageSize} (use --size)");
        }
    }

    /// <summary>Checks that this model and projection are the ones a store was featurized with.</summary>
    /// <exception cref="AttributionException">The gradient graph's fingerprint or the feature length differs.</exception>
    public void RequireStore(string storeDirectory, FeatureStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (Fingerprint != store.Meta.ModelFingerprint)
        {
            throw new AttributionException($"{storeDirectory}: built from a gradient graph with SHA-256 {store.Meta.ModelFingerprint[..12]}…, but {Directory.VjpPath} has {Fingerprint[..12]}…; featurize again for this model");
        }
        if (Extractor.Dim != store.Dim)
        {
            throw new AttributionException($"{storeDirectory}: the store has k = {store.Dim}; the model's projection gives {Extractor.Dim}");
        }
    }

    public void Dispose()
    {
        _vjp.Dispose();
        _forward.Dispose();
    }
}

/// <summary>
/// TRAK / D-TRAK (Park et al. 2023; Zheng et al. 2024): featurize the training set into a store, finalize the kernel
/// inverse, and score queries τ(q)ᵢ = φ_qᵀ (ΦᵀΦ + λI)⁻¹ φᵢ by one solve and one scan of the store.
/// </summary>
public static class TrakEngine
{
    public const string PreconditionerFile = "preconditioner.bin";

    /// <summary>The store metadata these options produce (the row contents depend on exactly these fields).</summary>
    public static StoreMeta Meta(FeaturizeOptions o, string modelFingerprint, int dim) => new()
    {
        ModelFingerprint = modelFingerprint,
        Method = o.Method,
        Measurement = o.Plan.Measurement switch { MeasurementKind.Loss => "diffusion-loss", _ => "squared-output-norm" },
        Timesteps = o.Plan.Timesteps.ToArray(),
        NoiseDraws = o.Plan.NoiseDraws,
        NoiseSeed = o.Plan.NoiseSeed,
        Projector = new ProjectorSpec(o.Projection.Kind == ProjectorKind.Dense ? "dense" : "factored", o.Projection.Seed, dim)
        {
            Settings = new SortedDictionary<string, string>(StringComparer.Ordinal)
            {
                ["distribution"] = o.Projection.Distribution.ToString().ToLowerInvariant(),
                ["requestedDim"] = o.Projection.Dim.ToString(System.Globalization.CultureInfo.InvariantCulture),
            },
        },
        DType = o.DType,
        Rows = o.Data.Count,
        DatasetFingerprint = o.Data.Fingerprint,
        Subset = o.Subset,
        Shard = o.Shard,
    };

    /// <summary>
    /// Featurizes the rows of the shard that are not done yet, flushing after every batch: a killed run loses at most
    /// one batch and a rerun with the same options continues, giving the same bytes as an uninterrupted run.
    /// </summary>
    /// <returns>The completed store (only this shard's rows when sharded).</returns>
    public static FeatureStore Featurize(FeaturizeOptions o, IProgress<(long Done, long Total)>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(o);
        ArgumentOutOfRangeException.ThrowIfLessThan(o.BatchSize, 1);
        using var model = new TrakModel(o.ModelDirectory, o.Plan, o.Projection, o.Session);
        var meta = Meta(o, model.Fingerprint, model.Extractor.Dim);
        model.RequireGeometry(o.Data);
        using var writer = FeatureStoreWriter.OpenOrCreate(o.OutDirectory, meta);
        var pending = writer.PendingRows;
        long total = writer.RowCount;
        long done = writer.DoneCount;
        progress?.Report((done, total));
        int d = o.Data.ImageLength;
        int k = model.Extractor.Dim;
        var images = new float[o.BatchSize * d];
        var features = new float[o.BatchSize * k];
        int index = 0;
        while (index < pending.Count)
        {
            cancel.ThrowIfCancellationRequested();
            // A batch of consecutive pending rows, so each is written in one piece.
            int count = 1;
            while (count < o.BatchSize && index + count < pending.Count && pending[index + count] == pending[index] + count)
            {
                count++;
            }
            long first = pending[index];
            o.Data.Pixels.Slice(checked((int)(first * d)), count * d).CopyTo(images);
            model.Extractor.Extract(images.AsSpan(0, count * d), count, features.AsSpan(0, count * k));
            writer.WriteRows(first, count, features.AsSpan(0, count * k));
            writer.Flush();
            index += count;
            done += count;
            progress?.Report((done, total));
        }
        return writer.Complete();
    }

    /// <summary>
    /// The identity of a store's contents for derived files: SHA-256 of meta.json, the size of features.npy and sixteen
    /// 64 KiB samples spread over it (hashing a many-GiB file on every query would cost more than the query).
    /// </summary>
    public static byte[] StoreFingerprint(string storeDirectory)
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        sha.AppendData(File.ReadAllBytes(Path.Combine(storeDirectory, StoreFiles.Meta)));
        using var features = File.OpenRead(Path.Combine(storeDirectory, StoreFiles.Features));
        sha.AppendData(BitConverter.GetBytes(features.Length));
        var chunk = new byte[65536];
        for (int i = 0; i < 16; i++)
        {
            features.Position = Math.Max(0, features.Length - chunk.Length) * i / 15;
            int n = features.ReadAtLeast(chunk, chunk.Length, throwOnEndOfStream: false);
            sha.AppendData(chunk, 0, n);
        }
        return sha.GetHashAndReset();
    }

    /// <summary>Accumulates ΦᵀΦ in float64 over the store, factorises ΦᵀΦ + λI and writes preconditioner.bin beside the features.</summary>
    public static Preconditioner Finalize(string storeDirectory, double relativeDamping, IProgress<(long Done, long Total)>? progress = null)
    {
        using var store = FeatureStore.Open(storeDirectory);
        if (store.Meta.Shard != ShardSpec.Whole)
        {
            throw new UserInputException($"{storeDirectory} is shard {store.Meta.Shard.Index}/{store.Meta.Shard.Count}: merge the shards first ('merge')");
        }
        var gram = new Preconditioner.GramAccumulator(store.Dim);
        const int block = 256;
        var rows = new float[block * store.Dim];
        for (long start = 0; start < store.Rows; start += block)
        {
            int n = (int)Math.Min(block, store.Rows - start);
            for (int r = 0; r < n; r++)
            {
                store.ReadRow(start + r, rows.AsSpan(r * store.Dim, store.Dim));
            }
            gram.Add(rows.AsSpan(0, n * store.Dim), n);
            progress?.Report((start + n, store.Rows));
        }
        var pre = gram.Factorize(relativeDamping, StoreFingerprint(storeDirectory));
        pre.Save(Path.Combine(storeDirectory, PreconditionerFile));
        return pre;
    }
}
