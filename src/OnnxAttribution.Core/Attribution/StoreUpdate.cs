using System.Security.Cryptography;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// Living stores: <see cref="Append"/> adds training rows and <see cref="Remove"/> takes rows out of every answer, without
/// featurizing the other rows again. Each change builds the store's next version in its staging folder and commits it in one
/// step (<see cref="StoreCommit"/>), so a kill at any point leaves the previous version or the next, and adds a version to
/// the store's history.
/// </summary>
/// <remarks>
/// Either change deletes the store's 8-bit copy (<see cref="StoreQuantizer"/>), which describes the old rows: queries read the
/// exact rows until <c>quantize</c> is run again.
/// Only TRAK and D-TRAK stores can be updated: what they derive from the rows, ΦᵀΦ, is a sum over rows. Appending adds the new
/// rows' products to the kept ΦᵀΦ (gram.bin) in row order, the same operations in the same order as one pass over all rows, so
/// the appended store answers with the same bits as one built on all rows at once. Removing zeroes the rows' features and sums
/// ΦᵀΦ again over the rows that remain (a zero row adds nothing, so again the same bits as a store built without them).
/// </remarks>
public static partial class StoreUpdate
{
    private const string StagedRows = "rows";

    /// <summary>
    /// Featurizes only the new rows with the store's own model, plan, projection and noise, appends them after the store's
    /// rows, updates ΦᵀΦ and the preconditioner (same damping, same kernel form) when the store is finalized, and commits the
    /// next version. Resumable: after a kill, the same request continues the new rows' featurization where it stopped.
    /// </summary>
    /// <returns>The version written.</returns>
    /// <exception cref="UserInputException">The store cannot be updated (its method, a shard, no source.json), the new images
    /// differ in size or channels or are already rows of the store, or the model is not the store's.</exception>
    /// <exception cref="StoreLockedException">Another writer holds the store.</exception>
    public static StoreVersion Append(AppendRequest request, IProgress<(long Done, long Total)>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        string dir = request.StoreDirectory;
        StoreCommit.Recover(dir);
        using var storeLock = StoreLock.Acquire(dir, "append");
        using var store = FeatureStore.Open(dir);
        var meta = RequireUpdatable(store, "append");
        var source = StoreSource.TryLoad(dir)
            ?? throw new UserInputException($"{Path.Combine(dir, StoreFiles.Source)} not found: append needs to know the store's rows (made by featurize)");
        string model = request.ModelDirectory ?? source.ModelDirectory;
        var modelDirectory = ModelDirectory.Open(model);
        var files = GradientModel.ModelFilesOf(modelDirectory);
        var differences = GradientModel.ModelFileDifferences(meta, modelDirectory, files);
        string graph = File.Exists(modelDirectory.VjpPath) ? modelDirectory.VjpPath : modelDirectory.RequireForward();
        if (differences.Count > 0 || files[Path.GetFileName(graph)] != meta.ModelFingerprint)
        {
            throw new UserInputException($"--model {model}: not the model the store {dir} was built from" +
                (differences.Count > 0 ? ":\n  " + string.Join("\n  ", differences) : " (its gradient graph's SHA-256 differs from meta.json's modelFingerprint)"));
        }
        var existing = source.LoadData();
        RequireNewRows(existing, meta, request);
        string staging = StoreCommit.StagingOf(dir);
        string rows = Path.Combine(staging, StagedRows);
        if (Directory.Exists(staging) && !StagesRows(rows, request.Data))
        {
            // An abandoned change (other rows, or a remove): the store is as it was; start afresh.
            StoreCommit.Discard(dir);
        }
        var options = new FeaturizeOptions
        {
            ModelDirectory = model,
            Data = request.Data,
            Subset = request.Subset,
            Plan = TrakScorer.PlanOf(meta),
            Projection = TrakScorer.ProjectionOf(meta),
            DType = meta.DType,
            Method = meta.Method,
            OutDirectory = rows,
            BatchSize = request.BatchSize,
            Session = request.Session,
        };
        using var added = TrakEngine.Featurize(options, progress, cancel);
        StoreCommit.KillPoint("append:featurized");
        var all = existing.Concat(request.Data);
        var next = meta with
        {
            Rows = meta.Rows + added.Rows,
            DatasetFingerprint = all.Fingerprint,
            // A conditional store records the labels of all its rows, as a store built on them at once does.
            Settings = DatasetConditions.WithSettings(new SortedDictionary<string, string>(meta.Settings.ToDictionary(), StringComparer.Ordinal),
                modelDirectory.Metadata.Condition, DatasetConditions.Of(modelDirectory.Metadata.Condition, all, model)),
            Subset = $"{meta.Subset} + {request.DataName}:{request.Subset}",
            Checksums = StoreChecksums.AlgorithmName,
        };
        var part = new StoreSourcePart(request.DataName, request.Subset, added.Rows);
        (source with { Appended = [.. source.Appended ?? [], part] }).Save(dir, staging);
        StageFeatures(staging, next, [store, added], []);
        StoreCommit.KillPoint("append:staged");
        var damping = StageKernel(store, staging, gram => AddRows(gram, added));
        var version = StoreHistory.Record(staging, "append",
            new StoreChange { By = request.By, AddedRows = [meta.Rows, next.Rows], Damping = damping }, historyFrom: dir);
        // The 8-bit copy describes the old rows: delete it (queries read the exact rows) before the new version is decided.
        StoreQuantizer.Delete(dir);
        StoreCommit.Commit(dir, Files(staging));
        return version;
    }

    /// <summary>
    /// Takes <see cref="RemoveRequest.Rows"/> out of every answer: their features are overwritten with zeros in a new
    /// features.npy (the old file is deleted, not kept beside it), meta.json lists them as removed (scans skip them), ΦᵀΦ and
    /// the preconditioner are computed again over the rows that remain, and the removal (rows, reason, who, when) is a
    /// version in the store's history.
    /// </summary>
    /// <returns>The version written.</returns>
    /// <exception cref="UserInputException">The store cannot be updated, a row is not in the store or was removed already,
    /// no reason is given, or an append is staged and unfinished.</exception>
    /// <exception cref="StoreLockedException">Another writer holds the store.</exception>
    public static StoreVersion Remove(RemoveRequest request, IProgress<(long Done, long Total)>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(request);
        string dir = request.StoreDirectory;
        if (string.IsNullOrWhiteSpace(request.Reason))
        {
            throw new UserInputException("--reason: give the reason for the removal (it is recorded in the store's history)");
        }
        StoreCommit.Recover(dir);
        using var storeLock = StoreLock.Acquire(dir, "remove");
        using var store = FeatureStore.Open(dir);
        var meta = RequireUpdatable(store, "remove");
        var removing = request.Rows.Distinct().Order().ToList();
        if (removing.Count == 0)
        {
            throw new UserInputException("--rows: no rows given");
        }
        foreach (long row in removing)
        {
            if (row < 0 || row >= meta.Rows)
            {
                throw new UserInputException($"--rows: row {row} is not in the store {dir} (it has rows 0 to {meta.Rows - 1})");
            }
            if (meta.RemovedRows?.Contains(row) == true)
            {
                throw new UserInputException($"--rows: row {row} was removed from {dir} already (see 'inspect --store {dir} --history')");
            }
        }
        string staging = StoreCommit.StagingOf(dir);
        if (Directory.Exists(Path.Combine(staging, StagedRows)))
        {
            throw new UserInputException($"{staging}: an append is unfinished; run the same append again to finish it, or delete {staging} to abandon it, then remove");
        }
        StoreCommit.Discard(dir);
        var next = meta with { RemovedRows = [.. (meta.RemovedRows ?? []).Concat(removing).Order()], Checksums = StoreChecksums.AlgorithmName };
        StageFeatures(staging, next, [store], next.RemovedRows!);
        StoreCommit.KillPoint("remove:staged");
        var damping = StageKernel(store, staging, null, progress);
        var version = StoreHistory.Record(staging, "remove",
            new StoreChange { By = request.By, Reason = request.Reason, RemovedRows = removing, Damping = damping }, historyFrom: dir);
        // The 8-bit copy describes the old rows: delete it (queries read the exact rows) before the new version is decided.
        StoreQuantizer.Delete(dir);
        StoreCommit.Commit(dir, Files(staging));
        return version;
    }

    /// <summary>The store's meta when it is a whole, complete store of an updatable method; otherwise refuses naming the verb.</summary>
    private static StoreMeta RequireUpdatable(FeatureStore store, string verb)
    {
        string dir = store.Directory;
        if (File.Exists(Path.Combine(dir, StoreFiles.Ensemble)))
        {
            throw new UserInputException($"{verb}: {dir} is an ensemble store; ensembles cannot be updated in place: build the store again with the new rows");
        }
        var meta = store.Meta;
        string method = Methods.MethodManifest.TryLoad(dir)?.Method ?? meta.Method;
        string[] sidecars = [StoreFiles.Losses, StoreFiles.Norms, StoreFiles.Residuals, StoreFiles.Kfac];
        var updatable = Methods.AttributionMethods.UpdatableMethods;
        if (!updatable.Contains(method) || !updatable.Contains(meta.Method) || sidecars.Any(f => File.Exists(Path.Combine(dir, f))))
        {
            throw new UserInputException($"{verb}: {dir} is a {method} store; only {string.Join(" and ", updatable)} stores can be updated in place " +
                $"(their kernel is a sum over rows): build the {method} store again ('featurize --method {method}')");
        }
        if (meta.Shard != ShardSpec.Whole)
        {
            throw new UserInputException($"{verb}: {dir} is shard {meta.Shard.Index}/{meta.Shard.Count}: merge the shards first ('merge')");
        }
        return meta;
    }

    /// <summary>Refuses new images of another geometry, or images that are rows of the store already (removed ones included).</summary>
    private static void RequireNewRows(ImageDataset existing, StoreMeta meta, AppendRequest request)
    {
        var data = request.Data;
        string what = $"--data {request.DataName} --subset {request.Subset}";
        if (data.Count == 0)
        {
            throw new UserInputException($"{what}: no images to append");
        }
        if (data.Channels != existing.Channels || data.Height != existing.Height || data.Width != existing.Width)
        {
            throw new UserInputException($"{what}: the images are {data.Channels}×{data.Height}×{data.Width}; the store's rows are " +
                $"{existing.Channels}×{existing.Height}×{existing.Width}");
        }
        if (existing.Count != meta.Rows || existing.Fingerprint != meta.DatasetFingerprint)
        {
            throw new UserInputException($"{Path.Combine(request.StoreDirectory, StoreFiles.Source)}: its dataset no longer gives the store's rows " +
                "(datasetFingerprint differs from meta.json's); the images cannot be checked against the store's");
        }
        var known = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < existing.Count; i++)
        {
            known.TryAdd(ImageHash(existing, i), i);
        }
        for (int i = 0; i < data.Count; i++)
        {
            if (!known.TryAdd(ImageHash(data, i), existing.Count + i))
            {
                int row = known[ImageHash(data, i)];
                string state = row >= existing.Count ? $"the same as new image {row - existing.Count}"
                    : meta.RemovedRows?.Contains(row) == true ? $"row {row} of the store, which was removed" : $"row {row} of the store already";
                throw new UserInputException($"{what}: new image {i} is {state}; leave it out");
            }
        }
    }

    private static string ImageHash(ImageDataset data, int index) =>
        Convert.ToHexStringLower(SHA256.HashData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.Image(index))));

    /// <summary>Whether a staged featurization in <paramref name="rows"/> is of <paramref name="data"/> (so it resumes).</summary>
    private static bool StagesRows(string rows, ImageDataset data)
    {
        string meta = Path.Combine(rows, StoreFiles.Meta);
        return File.Exists(meta) && StoreMeta.Load(meta).DatasetFingerprint == data.Fingerprint;
    }

}
