using OnnxAttribution.Core.Data;
using OnnxAttribution.Core.Gradients;
using OnnxAttribution.Core.Runtime;
using OnnxAttribution.Core.Projection;
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

    /// <summary>
    /// Also write each row's diffusion loss ‖ε − ε̂‖²/D, averaged over the plan's pairs, to <see cref="TrakEngine.LossesFile"/>
    /// (N×1 float32) from the same forward passes; resumable with the rows. Does not change the features.
    /// </summary>
    public bool RecordLosses { get; init; }
    /// <summary>Also write <see cref="TrakEngine.NormsFile"/>: the L2 norm of each row's unprojected gradient (dense projection only).</summary>
    public bool GradientNorms { get; init; }

    public SessionSettings Session { get; init; } = SessionSettings.Default;
}

/// <summary>Open sessions on a model directory for featurizing or querying with one plan and projection.</summary>
public sealed class TrakModel : IDisposable
{
    private readonly OnnxDenoiser _forward;
    private readonly VjpSession _vjp;
    private readonly FactoredProjector? _factored;
    private readonly ProjectionSettings _projection = null!;

    /// <summary>Opens the sessions.</summary>
    /// <param name="modelDirectory">The model folder.</param>
    /// <param name="plan">The featurization plan.</param>
    /// <param name="projection">The projection the gradient graph is specialised to.</param>
    /// <param name="session">ONNX Runtime settings.</param>
    /// <param name="kroneckerFactors">For factored projection: give the gradient graph the layers' Kronecker factors as outputs
    /// (K-FAC's curvature and preconditioned queries need them) instead of the projection computed inside the graph.</param>
    public TrakModel(string modelDirectory, FeaturizationPlan plan, ProjectionSettings projection, SessionSettings? session = null, bool kroneckerFactors = false)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(projection);
        Directory = ModelDirectory.Open(modelDirectory);
        _forward = Directory.OpenDenoiser(session);
        try
        {
            // The store is tied to the model's gradient graph (vjp.onnx), but featurizing runs a graph specialised to the
            // projection, derived from forward.onnx with the same rules: only per-example gradients for dense, only the
            // projected factors (or, for K-FAC, the raw factors) for factored. ONNX Runtime runs every node of a graph
            // whatever outputs are asked for. A folder without vjp.onnx (an exported training checkpoint) is identified by
            // its forward graph instead.
            FingerprintPath = File.Exists(Directory.VjpPath) ? Directory.VjpPath : Directory.RequireForward();
            ModelFiles = ModelFilesOf(Directory);
            Fingerprint = ModelFiles[Path.GetFileName(FingerprintPath)];
            // The graph also computes the measurement's cotangent from its own ε̂, so a pair takes one run, not a forward pass
            // first. Factored features without the factors: the graph applies the projector's P_in and P_out itself (convolving each
            // layer's input with P_in's columns), so no layer's input is unfolded and only ε̂ and k values per example leave ORT.
            var forward = Onnx.OnnxModelFile.Load(Directory.RequireForward());
            var parameters = Directory.Metadata.Parameters.Count > 0 ? Directory.Metadata.Parameters.Select(p => p.Name).ToList() : null;
            bool inGraph = projection.Kind == ProjectorKind.Factored && !kroneckerFactors;
            if (inGraph)
            {
                var layers = Onnx.Differentiation.VjpBuilder.FactorLayers(forward, parameters);
                if (layers.Count == 0)
                {
                    throw new GraphContractException($"{Directory.RequireForward()}: --projector factored needs Conv, Gemm or MatMul weights among the parameters; the graph has none (use --projector dense)");
                }
                _factored = FeatureExtractor.CreateFactored(layers.Select(l => (l.Layer, checked((int)l.InDim), checked((int)l.OutDim))).ToList(), projection);
            }
            var graph = Onnx.Differentiation.VjpBuilder.Build(forward, new Onnx.Differentiation.VjpOptions
            {
                Parameters = parameters,
                PerExampleGradients = projection.Kind == ProjectorKind.Dense,
                KroneckerFactors = projection.Kind == ProjectorKind.Factored && kroneckerFactors,
                FactorProjections = _factored is null ? null : InGraphProjections(_factored),
                CotangentFromOutput = true,
            });
            _vjp = VjpSession.FromBytes(Google.Protobuf.MessageExtensions.ToByteArray(graph), $"the gradient graph of {Directory.RequireForward()} ({projection.Kind.ToString().ToLowerInvariant()} features)", session);
            _projection = projection;
            Extractor = ExtractorFor(plan, projection);
        }
        catch
        {
            _forward.Dispose();
            _vjp?.Dispose();
            throw;
        }
    }

    public ModelDirectory Directory { get; }

    /// <summary>SHA-256 of vjp.onnx (of forward.onnx in a folder without one): the store's model fingerprint.</summary>
    public string Fingerprint { get; }

    /// <summary>The file <see cref="Fingerprint"/> is the hash of.</summary>
    public string FingerprintPath { get; }

    /// <summary>SHA-256 of every model file featurize and queries depend on (<see cref="ModelFilesOf"/>), as recorded in meta.json.</summary>
    public IReadOnlyDictionary<string, string> ModelFiles { get; }

    /// <summary>The name of model.json in a model folder.</summary>
    private const string MetadataFile = "model.json";

    /// <summary>
    /// SHA-256 (lower-case hex) by file name of what featurize and queries read from a model folder: the forward graph (the
    /// gradient graph run is derived from it), vjp.onnx when present (the store's <see cref="StoreMeta.ModelFingerprint"/>),
    /// and model.json (noise schedule, parameters, geometry).
    /// </summary>
    /// <exception cref="ModelFileException">The forward graph is missing.</exception>
    public static IReadOnlyDictionary<string, string> ModelFilesOf(ModelDirectory directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var files = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            [Path.GetFileName(directory.RequireForward())] = StoreMeta.FingerprintFile(directory.ForwardPath),
            [MetadataFile] = StoreMeta.FingerprintFile(Path.Combine(directory.Path, MetadataFile)),
        };
        if (File.Exists(directory.VjpPath))
        {
            files[Path.GetFileName(directory.VjpPath)] = StoreMeta.FingerprintFile(directory.VjpPath);
        }
        return files;
    }

    /// <summary>
    /// One line per model file that the store's meta.json records and that differs in (or is missing from) the model folder;
    /// empty when all match. Stores made before the files were recorded record none, so nothing is compared for them here.
    /// </summary>
    /// <param name="store">The store's meta.json.</param>
    /// <param name="directory">The model folder.</param>
    /// <param name="files">The folder's fingerprints when already computed (<see cref="ModelFilesOf"/>); null to compute them.</param>
    public static IReadOnlyList<string> ModelFileDifferences(StoreMeta store, ModelDirectory directory, IReadOnlyDictionary<string, string>? files = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(directory);
        var diffs = new List<string>();
        foreach (var (name, recorded) in store.ModelFiles)
        {
            string path = Path.Combine(directory.Path, name);
            string? actual = files is not null && files.TryGetValue(name, out var known) ? known : File.Exists(path) ? StoreMeta.FingerprintFile(path) : null;
            if (actual is null)
            {
                diffs.Add($"{path}: missing; the store was built from a model folder with {name} (SHA-256 {recorded[..12]}…)");
            }
            else if (actual != recorded)
            {
                diffs.Add($"{path}: SHA-256 {actual[..12]}…, but the store was built from a {name} with {recorded[..12]}…");
            }
        }
        return diffs;
    }

    /// <summary>The extractor for the plan and projection this model was opened with.</summary>
    public FeatureExtractor Extractor { get; }

    /// <summary>
    /// Sessions for querying a feature store: the plan and projection recorded in its meta.json, checked against the model
    /// (the gradient graph's fingerprint and the feature length).
    /// </summary>
    /// <exception cref="AttributionException">The model is not the one the store was built from, or meta.json names an
    /// unknown measurement, projector or setting.</exception>
    public static TrakModel ForStore(FeatureStore store, string modelDirectory, SessionSettings? session = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        var model = new TrakModel(modelDirectory, TrakScorer.PlanOf(store), TrakScorer.ProjectionOf(store), session);
        try
        {
            model.RequireStore(store);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The projection kind the gradient graph was specialised to.</summary>
    public ProjectorKind Projector => _projection.Kind;

    /// <summary>
    /// An extractor for another plan (or, for dense, another projection) running on this model's sessions (valid while the
    /// model is not disposed): stores that differ only in their plan, such as Journey-TRAK's one store per timestep, share one model.
    /// </summary>
    /// <exception cref="ArgumentException">The projection's kind is not the one the gradient graph was built for, or the graph
    /// computes a factored projection itself and this one differs from it.</exception>
    public FeatureExtractor ExtractorFor(FeaturizationPlan plan, ProjectionSettings projection)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(projection);
        if (projection.Kind != Projector)
        {
            throw new ArgumentException($"the gradient graph was built for {Projector} projection, not {projection.Kind}", nameof(projection));
        }
        if (_factored is not null && projection != _projection)
        {
            throw new ArgumentException($"the gradient graph applies the factored projection {_projection} itself, not {projection}", nameof(projection));
        }
        return new FeatureExtractor(new GradientSource(_forward, _vjp, Directory.CreateSchedule(), plan), projection, _factored);
    }

    private static List<Onnx.Differentiation.FactorProjection> InGraphProjections(FactoredProjector projector) =>
        projector.Layers.Select((layer, l) =>
        {
            var pIn = new float[layer.InDim * projector.InputProjectionDim];
            var pOut = new float[layer.OutDim * projector.OutputProjectionDim];
            projector.CopyInputProjection(l, pIn);
            projector.CopyOutputProjection(l, pOut);
            return new Onnx.Differentiation.FactorProjection(layer.Layer, pIn, projector.InputProjectionDim, pOut, projector.OutputProjectionDim);
        }).ToList();

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
    /// <param name="store">The store.</param>
    /// <param name="extractor">The extractor that will score it (default: <see cref="Extractor"/>).</param>
    /// <remarks>Checks vjp.onnx's fingerprint (forward.onnx's without one) and, for stores that record them, every model file of
    /// <see cref="StoreMeta.ModelFiles"/>; older stores are checked by the first alone.</remarks>
    /// <exception cref="AttributionException">A model file's fingerprint or the feature length differs.</exception>
    public void RequireStore(FeatureStore store, FeatureExtractor? extractor = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (Fingerprint != store.Meta.ModelFingerprint)
        {
            throw new AttributionException($"{store.Directory}: built from a model with SHA-256 {store.Meta.ModelFingerprint[..12]}…, but {FingerprintPath} has {Fingerprint[..12]}…; featurize again for this model");
        }
        var diffs = ModelFileDifferences(store.Meta, Directory, ModelFiles);
        if (diffs.Count > 0)
        {
            throw new AttributionException($"{store.Directory}: the model folder is not the one the store was built from (queries would run another model's graph):\n  " +
                string.Join("\n  ", diffs) + "\nPass the model folder the store was built from, or featurize again for this model");
        }
        int dim = (extractor ?? Extractor).Dim;
        if (dim != store.Dim)
        {
            throw new AttributionException($"{store.Directory}: the store has k = {store.Dim}; the model's projection gives {dim}");
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

    /// <summary>Per-row diffusion losses written when <see cref="FeaturizeOptions.RecordLosses"/> is set (N×1 float32 .npy).</summary>
    public const string LossesFile = "losses.npy";

    /// <summary>meta.json settings key recording <see cref="FeaturizationPlan.NormalizePairs"/> (value "l2"; absent when off).</summary>
    public const string PairNormalizationSetting = "pairNormalization";
    /// <summary>With <see cref="FeaturizeOptions.GradientNorms"/>: an N×1 float32 .npy of ‖∇f(xᵢ)‖ (unprojected), beside the features.</summary>
    public const string NormsFile = "norms.npy";

    /// <summary>The store metadata these options produce (the row contents depend on exactly these fields).</summary>
    public static StoreMeta Meta(FeaturizeOptions o, string modelFingerprint, int dim) => new()
    {
        ModelFingerprint = modelFingerprint,
        Method = o.Method,
        Measurement = Measurement.StoreName(o.Plan.Measurement),
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
        // Only the settings in use are written, so stores made before an option existed keep their meta.json.
        Settings = SettingsOf(o.Plan),
    };

    /// <summary>The meta.json settings a plan needs recorded: pair normalisation and the one-random-timestep mode, each only when on.</summary>
    private static SortedDictionary<string, string> SettingsOf(FeaturizationPlan plan)
    {
        var settings = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (plan.NormalizePairs)
        {
            settings[PairNormalizationSetting] = "l2";
        }
        if (plan.RandomTimestepRound is long round)
        {
            settings[PlanSetting] = OneRandomTimestep;
            settings[RoundSetting] = round.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        return settings;
    }

    /// <summary>meta.json settings of a one-random-timestep plan (<see cref="FeaturizationPlan.RandomTimestepRound"/>).</summary>
    internal const string PlanSetting = "plan", OneRandomTimestep = "one-random-timestep", RoundSetting = "plan.round";

    /// <summary>
    /// Featurizes the rows of the shard that are not done yet, flushing after every batch: a killed run loses at most
    /// one batch and a rerun with the same options continues, giving the same bytes as an uninterrupted run.
    /// </summary>
    /// <returns>The completed store (only this shard's rows when sharded).</returns>
    public static FeatureStore Featurize(FeaturizeOptions o, IProgress<(long Done, long Total)>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(o);
        using var model = new TrakModel(o.ModelDirectory, o.Plan, o.Projection, o.Session);
        return Featurize(o, model, progress, cancel);
    }

    /// <summary>
    /// <see cref="Featurize(FeaturizeOptions, IProgress{ValueTuple{long, long}}?, CancellationToken)"/> on an open model,
    /// so several stores can share its sessions; <c>o.ModelDirectory</c> and <c>o.Session</c> are taken to be the model's.
    /// </summary>
    public static FeatureStore Featurize(FeaturizeOptions o, TrakModel model, IProgress<(long Done, long Total)>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(o);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfLessThan(o.BatchSize, 1);
        if (o.GradientNorms && o.Projection.Kind != ProjectorKind.Dense)
        {
            throw new UserInputException($"{o.OutDirectory}: gradient norms need the dense projector; the factored projector never forms the whole gradient");
        }
        var extractor = model.ExtractorFor(o.Plan, o.Projection);
        var meta = Meta(o, model.Fingerprint, extractor.Dim) with { ModelFiles = model.ModelFiles };
        model.RequireGeometry(o.Data);
        using var writer = FeatureStoreWriter.OpenOrCreate(o.OutDirectory, meta);
        SidecarMatrix? Column(bool wanted, string file) =>
            wanted ? SidecarMatrix.OpenOrCreate(Path.Combine(o.OutDirectory, file), writer.FirstRow, writer.RowCount, 1, create: writer.DoneCount == 0) : null;
        using var losses = Column(o.RecordLosses, LossesFile);
        using var norms = Column(o.GradientNorms, NormsFile);
        var pending = writer.PendingRows;
        long total = writer.RowCount;
        long done = writer.DoneCount;
        progress?.Report((done, total));
        int d = o.Data.ImageLength;
        int k = extractor.Dim;
        var images = new float[o.BatchSize * d];
        var features = new float[o.BatchSize * k];
        var rowLosses = new float[o.BatchSize];
        var rows = new long[o.BatchSize];
        var rowNorms = new float[o.BatchSize];
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
            for (int b = 0; b < count; b++)
            {
                rows[b] = first + b;
            }
            o.Data.Pixels.Slice(checked((int)(first * d)), count * d).CopyTo(images);
            extractor.Extract(images.AsSpan(0, count * d), count, features.AsSpan(0, count * k), losses is null ? default : rowLosses.AsSpan(0, count),
                rows.AsSpan(0, count), norms is null ? default : rowNorms.AsSpan(0, count));
            // Losses and norms reach the disk before the rows are marked done, so a done row always has them.
            losses?.WriteRows(first, rowLosses.AsSpan(0, count));
            losses?.Flush();
            norms?.WriteRows(first, rowNorms.AsSpan(0, count));
            norms?.Flush();
            writer.WriteRows(first, count, features.AsSpan(0, count * k));
            writer.Flush();
            index += count;
            done += count;
            progress?.Report((done, total));
        }
        losses?.Dispose();
        norms?.Dispose();
        var store = writer.Complete();
        try
        {
            StoreChecksums.RecordFiles(store, replace: pending.Count > 0, LossesFile, NormsFile);
            return store;
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    /// <summary>The losses of <see cref="LossesFile"/>, one per row held, in row order.</summary>
    /// <exception cref="StoreFormatException">The file is missing or does not fit the store.</exception>
    public static float[] ReadLosses(FeatureStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        var path = Path.Combine(store.Directory, LossesFile);
        if (!File.Exists(path))
        {
            throw new StoreFormatException($"{path}: not found; featurize with losses recorded (FeaturizeOptions.RecordLosses)");
        }
        StoreChecksums.RequireFile(store.Directory, LossesFile, "featurize the store again");
        return SidecarMatrix.ReadAll(path, store.Rows, 1);
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
    /// <remarks>Holds the store's <see cref="StoreLock"/> and reserves the file's disk space before the work, so a store being
    /// written or a full disk is refused at once; on any failure no preconditioner.bin.tmp is left.</remarks>
    /// <exception cref="UserInputException"><paramref name="relativeDamping"/> is negative or not finite, or the store is a shard.</exception>
    /// <exception cref="StoreFormatException">A feature is NaN or infinite (the message names the row and column).</exception>
    /// <exception cref="StoreLockedException">Another writer holds the store.</exception>
    public static Preconditioner Finalize(string storeDirectory, double relativeDamping, IProgress<(long Done, long Total)>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(storeDirectory);
        RequireDamping(relativeDamping);
        using var storeLock = StoreLock.Acquire(storeDirectory, "finalize");
        using var store = OpenWhole(storeDirectory);
        using var output = AtomicFile.Create(Path.Combine(storeDirectory, PreconditionerFile), Preconditioner.FileLength(store.Dim));
        return WritePreconditioner(store, Gram(store, progress), relativeDamping, output);
    }

    /// <summary>
    /// Factorises ΦᵀΦ + λI from a Gram matrix already accumulated over the store (<c>Gram</c>) and writes preconditioner.bin:
    /// another damping of the same features costs one Cholesky factorisation, no pass over the store.
    /// </summary>
    /// <exception cref="UserInputException"><paramref name="relativeDamping"/> is negative or not finite, or the store is a shard.</exception>
    /// <exception cref="StoreLockedException">Another writer holds the store.</exception>
    public static Preconditioner Finalize(string storeDirectory, Preconditioner.GramAccumulator gram, double relativeDamping)
    {
        ArgumentNullException.ThrowIfNull(storeDirectory);
        ArgumentNullException.ThrowIfNull(gram);
        RequireDamping(relativeDamping);
        using var storeLock = StoreLock.Acquire(storeDirectory, "finalize");
        using var store = OpenWhole(storeDirectory);
        using var output = AtomicFile.Create(Path.Combine(storeDirectory, PreconditionerFile), Preconditioner.FileLength(store.Dim));
        return WritePreconditioner(store, gram, relativeDamping, output);
    }

    /// <summary>ΦᵀΦ of a whole (merged) store, accumulated in float64.</summary>
    /// <exception cref="UserInputException">The store is one shard of several.</exception>
    /// <exception cref="StoreFormatException">A feature is NaN or infinite (the message names the row and column).</exception>
    public static Preconditioner.GramAccumulator Gram(string storeDirectory, IProgress<(long Done, long Total)>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(storeDirectory);
        using var store = OpenWhole(storeDirectory);
        return Gram(store, progress);
    }

    private static void RequireDamping(double relativeDamping)
    {
        if (!(double.IsFinite(relativeDamping) && relativeDamping >= 0))
        {
            throw new UserInputException($"damping {relativeDamping}: the relative damping λ must be a finite number ≥ 0");
        }
    }

    private static FeatureStore OpenWhole(string storeDirectory)
    {
        var store = FeatureStore.Open(storeDirectory);
        if (store.Meta.Shard != ShardSpec.Whole)
        {
            store.Dispose();
            throw new UserInputException($"{storeDirectory} is shard {store.Meta.Shard.Index}/{store.Meta.Shard.Count}: merge the shards first ('merge')");
        }
        return store;
    }

    private static Preconditioner.GramAccumulator Gram(FeatureStore store, IProgress<(long Done, long Total)>? progress)
    {
        var gram = new Preconditioner.GramAccumulator(store.Dim);
        const int block = 256;
        var rows = new float[block * store.Dim];
        for (long start = 0; start < store.Rows; start += block)
        {
            int n = (int)Math.Min(block, store.Rows - start);
            for (int r = 0; r < n; r++)
            {
                var row = rows.AsSpan(r * store.Dim, store.Dim);
                store.ReadRow(start + r, row);
                RequireFinite(store, start + r, row);
            }
            gram.Add(rows.AsSpan(0, n * store.Dim), n);
            progress?.Report((start + n, store.Rows));
        }
        return gram;
    }

    /// <summary>Factorises, writes preconditioner.bin through <paramref name="output"/> and records its checksum.</summary>
    private static Preconditioner WritePreconditioner(FeatureStore store, Preconditioner.GramAccumulator gram, double relativeDamping, AtomicFile output)
    {
        var pre = gram.Factorize(relativeDamping, StoreFingerprint(store.Directory));
        output.Write(pre.WriteTo);
        output.Commit();
        StoreChecksums.RecordFiles(store, replace: true, PreconditionerFile);
        return pre;
    }

    /// <summary>
    /// Gives a complete method store another damping without featurizing again: each of its feature stores is finalized
    /// anew from its Gram matrix (kept in <paramref name="grams"/>, so a sweep reads each store once), and method.json's
    /// 'settings.damping' is rewritten.
    /// </summary>
    /// <param name="methodStore">The method store folder (with method.json).</param>
    /// <param name="method">The method it must be a store of.</param>
    /// <param name="relativeDamping">The new λ, relative to each kernel's mean diagonal.</param>
    /// <param name="featureStores">Its feature stores that hold a preconditioner (none where λ acts at query time only).</param>
    /// <param name="grams">Gram matrices already accumulated.</param>
    /// <exception cref="UserInputException">The store is not complete or not of <paramref name="method"/>, or records no damping.</exception>
    public static void Redamp(string methodStore, string method, double relativeDamping, IEnumerable<string> featureStores, GramCache grams)
    {
        ArgumentNullException.ThrowIfNull(featureStores);
        ArgumentNullException.ThrowIfNull(grams);
        var manifest = Methods.MethodManifest.Require(methodStore, method);
        if (manifest.Settings["damping"] is null)
        {
            throw new UserInputException($"{Path.Combine(methodStore, Methods.MethodManifest.FileName)}: field 'settings.damping' is missing; the {method} store has no damping to change");
        }
        foreach (var store in featureStores)
        {
            Finalize(store, grams.For(store), relativeDamping);
        }
        var settings = (System.Text.Json.Nodes.JsonObject)manifest.Settings.DeepClone();
        settings["damping"] = relativeDamping;
        (manifest with { Settings = settings }).Save(methodStore);
    }

    /// <summary>Throws naming the row when a feature is NaN or infinite: no damping makes such a Gram matrix usable.</summary>
    private static void RequireFinite(FeatureStore store, long row, ReadOnlySpan<float> values)
    {
        // The sum of squares is finite for any finite row of sane magnitude; only then is the row scanned element by element.
        if (float.IsFinite(System.Numerics.Tensors.TensorPrimitives.SumOfSquares(values)))
        {
            return;
        }
        for (int j = 0; j < values.Length; j++)
        {
            if (!float.IsFinite(values[j]))
            {
                throw new StoreFormatException($"{Path.Combine(store.Directory, StoreFiles.Features)}: row {row} holds {values[j]} at column {j}; " +
                    "the features must be finite (featurize that row again, e.g. after checking the model and image for NaN)");
            }
        }
    }
}

/// <summary>ΦᵀΦ of feature stores, accumulated once per store (by folder and content fingerprint) for a damping sweep.</summary>
public sealed class GramCache
{
    private readonly Dictionary<string, (byte[] Fingerprint, Preconditioner.GramAccumulator Gram)> _grams = new(StringComparer.Ordinal);

    /// <summary>The Gram matrix of the store in <paramref name="storeDirectory"/>, accumulated on first use.</summary>
    public Preconditioner.GramAccumulator For(string storeDirectory)
    {
        var key = Path.GetFullPath(storeDirectory);
        var fingerprint = TrakEngine.StoreFingerprint(storeDirectory);
        if (_grams.TryGetValue(key, out var hit) && hit.Fingerprint.AsSpan().SequenceEqual(fingerprint))
        {
            return hit.Gram;
        }
        var gram = TrakEngine.Gram(storeDirectory);
        _grams[key] = (fingerprint, gram);
        return gram;
    }

    /// <summary>Forgets every Gram matrix (k² float64 each).</summary>
    public void Clear() => _grams.Clear();
}
