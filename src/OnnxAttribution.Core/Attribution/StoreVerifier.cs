using System.Globalization;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// The full check of a feature store behind the <c>verify</c> verb: the files open and agree (meta.json, features.npy's
/// header, done.bitmap), every chunk of features.npy matches checksums.json, every row is finite, every derived file matches
/// its checksum, preconditioner.bin is finite and belongs to these features, and the model folder holds the files the store
/// was built from.
/// </summary>
/// <remarks>Reads every byte of the store once (features.npy through its mapping). Stores made before checksums or model files
/// were recorded are checked by what they hold; the report says what could not be checked.</remarks>
public static class StoreVerifier
{
    /// <summary>At most this many damaged ranges are listed per check (the count says how many there are).</summary>
    private const int ListedRanges = 10;

    /// <summary>Checks the store in <paramref name="directory"/> fully.</summary>
    /// <param name="directory">A feature-store folder (with meta.json).</param>
    /// <param name="modelDirectory">The model folder to check the recorded model files against; null to skip that check.</param>
    /// <param name="progress">Chunks checked of all chunks.</param>
    public static StoreVerification Verify(string directory, string? modelDirectory = null, IProgress<(long Done, long Total)>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var checks = new List<StoreFileCheck>();
        string features = Path.Combine(directory, StoreFiles.Features);
        FeatureStore store;
        try
        {
            store = FeatureStore.OpenUnchecked(directory);
        }
        catch (StoreFormatException e)
        {
            checks.Add(new StoreFileCheck(directory, "open", false, e.Message));
            return new StoreVerification(directory, checks);
        }
        using (store)
        {
            checks.Add(new StoreFileCheck(directory, "open", true, $"meta.json, features.npy header ({store.Rows} × {store.Dim} {store.DType}) and done.bitmap (every row done) agree"));
            StoreChecksums? sums = null;
            string sumsPath = Path.Combine(directory, StoreFiles.Checksums);
            try
            {
                sums = StoreChecksums.TryLoad(directory);
                sums?.Validate(sumsPath, store.Header);
                checks.Add(sums is not null ? new StoreFileCheck(sumsPath, "read", true, $"{sums.FeatureChunks.Count} chunks of {sums.ChunkRows} rows, {sums.Files.Count} files")
                    : store.Meta.Checksums is not null ? new StoreFileCheck(sumsPath, "read", false, $"missing, but meta.json (field 'checksums') says the store records checksums")
                    : new StoreFileCheck(sumsPath, "read", true, "none: the store was made before checksums were recorded; rows are checked for finite values only (featurize again to record them)"));
            }
            catch (StoreFormatException e)
            {
                sums = null;
                checks.Add(new StoreFileCheck(sumsPath, "read", false, e.Message));
            }
            CheckRows(store, sums, features, checks, progress);
            if (sums is not null)
            {
                foreach (string name in sums.Files.Keys)
                {
                    string? problem = sums.CheckFile(directory, name, "restore it or write it again");
                    checks.Add(new StoreFileCheck(Path.Combine(directory, name), "checksum", problem is null, problem ?? $"matches ({sums.Files[name].Bytes} bytes)"));
                }
            }
            if (store.HasQuantizedRows)
            {
                string? stale = store.QuantizedCopyProblem(sums);
                checks.Add(new StoreFileCheck(Path.Combine(directory, StoreFiles.QuantizedFeatures), "8-bit copy", stale is null,
                    stale ?? $"made from the rows features.npy holds ({StoreFiles.Checksums} field 'quantizedFrom')"));
            }
            CheckPreconditioner(store, checks);
            CheckHistory(directory, checks);
            if (modelDirectory is not null)
            {
                CheckModel(store, modelDirectory, checks);
            }
        }
        return new StoreVerification(directory, checks);
    }

    /// <summary>The version chain of history.json: ids, parents, numbers, and the newest version against the files.</summary>
    private static void CheckHistory(string directory, List<StoreFileCheck> checks)
    {
        string path = Path.Combine(directory, StoreFiles.History);
        try
        {
            if (StoreHistory.TryLoad(directory) is not { } history)
            {
                checks.Add(new StoreFileCheck(path, "versions", true, "none: the store was made before versions were recorded"));
                return;
            }
            var problems = history.Verify(directory);
            string held = $"{history.Versions.Count} versions, each id its content's hash and each parent the version before; " +
                $"the newest ({history.Head!.Number}, {history.Head.Id![..12]}…) is the store's files";
            checks.Add(new StoreFileCheck(path, "versions", problems.Count == 0, problems.Count == 0 ? held : string.Join("; ", problems)));
        }
        catch (StoreFormatException e)
        {
            checks.Add(new StoreFileCheck(path, "versions", false, e.Message));
        }
    }

    /// <summary>Every chunk against its hash and every row for NaN/Infinity, in one pass over the mapping.</summary>
    private static void CheckRows(FeatureStore store, StoreChecksums? sums, string features, List<StoreFileCheck> checks, IProgress<(long Done, long Total)>? progress)
    {
        var nonFinite = new List<long>();
        void Report(long localRow) => nonFinite.Add(store.FirstRow + localRow);
        if (sums is not null)
        {
            var bad = new List<string>();
            int count = 0;
            foreach (var (chunk, found) in sums.MismatchedChunks(store, Report))
            {
                count++;
                if (bad.Count < ListedRanges)
                {
                    var (first, end) = sums.ChunkRange(chunk);
                    bad.Add($"rows {store.FirstRow + first}–{store.FirstRow + end - 1} (chunk {chunk}: recorded {sums.FeatureChunks[(int)chunk]}, found {found})");
                }
            }
            progress?.Report((sums.FeatureChunks.Count, sums.FeatureChunks.Count));
            checks.Add(new StoreFileCheck(features, "chunks", count == 0, count == 0
                ? $"all {sums.FeatureChunks.Count} chunks match {StoreFiles.Checksums}"
                : $"{count} of {sums.FeatureChunks.Count} chunks do not match {StoreFiles.Checksums} (changed or damaged after featurize): " +
                    $"{string.Join("; ", bad)}{(count > bad.Count ? "; …" : "")}"));
        }
        else
        {
            long chunkRows = StoreChecksums.ChunkRowsFor((long)store.Dim * store.DType.ElementSize());
            for (long first = 0; first < store.Rows; first += chunkRows)
            {
                long end = Math.Min(store.Rows, first + chunkRows);
                StoreChecksums.ReportNonFiniteRows(store.GetLocalRowsBytes(first, end), store.DType, store.Dim, first, Report);
                progress?.Report((end, store.Rows));
            }
        }
        checks.Add(new StoreFileCheck(features, "finite", nonFinite.Count == 0, nonFinite.Count == 0
            ? $"all {store.Rows} rows finite"
            : $"{nonFinite.Count} rows hold NaN or Infinity: " +
                $"{string.Join(", ", nonFinite.Take(ListedRanges).Select(r => r.ToString(CultureInfo.InvariantCulture)))}" +
                $"{(nonFinite.Count > ListedRanges ? ", …" : "")}"));
    }

    private static void CheckPreconditioner(FeatureStore store, List<StoreFileCheck> checks)
    {
        string path = Path.Combine(store.Directory, StoreFiles.Preconditioner);
        if (!File.Exists(path))
        {
            return;
        }
        try
        {
            var pre = Preconditioner.Load(path, store.Dim, store.Rows, PreconditionerBuilder.StoreFingerprint(store.Directory));
            string order = pre.Form == KernelForm.Primal ? $"k = {pre.Order}" : $"dual over N = {pre.Order} rows";
            checks.Add(new StoreFileCheck(path, "factor", true, $"finite, {order}, built from these features (λ = {pre.Damping.ToString("G3", CultureInfo.InvariantCulture)})"));
        }
        catch (AttributionException e)
        {
            checks.Add(new StoreFileCheck(path, "factor", false, e.Message));
        }
    }

    private static void CheckModel(FeatureStore store, string modelDirectory, List<StoreFileCheck> checks)
    {
        ModelDirectory model;
        try
        {
            model = ModelDirectory.Open(modelDirectory);
        }
        catch (ModelFileException e)
        {
            checks.Add(new StoreFileCheck(modelDirectory, "model files", false, e.Message));
            return;
        }
        // The fingerprint every store records (vjp.onnx, or forward.onnx in a folder without one), then the files newer stores record.
        string main = File.Exists(model.VjpPath) ? model.VjpPath : model.ForwardPath;
        string? mainHash = File.Exists(main) ? StoreMeta.FingerprintFile(main) : null;
        if (mainHash != store.Meta.ModelFingerprint)
        {
            checks.Add(new StoreFileCheck(main, "model fingerprint", false, $"SHA-256 {mainHash?[..12] ?? "(missing)"}…, but meta.json's modelFingerprint is {store.Meta.ModelFingerprint}"));
        }
        else
        {
            checks.Add(new StoreFileCheck(main, "model fingerprint", true, "matches meta.json's modelFingerprint"));
        }
        var diffs = GradientModel.ModelFileDifferences(store.Meta, model);
        checks.Add(new StoreFileCheck(model.Path, "model files", diffs.Count == 0, diffs.Count > 0 ? string.Join("; ", diffs)
            : store.Meta.ModelFiles.Count == 0 ? "not recorded: the store was made before model files were recorded (checked by modelFingerprint alone)"
            : $"{string.Join(", ", store.Meta.ModelFiles.Keys)} match meta.json"));
    }
}
