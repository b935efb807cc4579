using OnnxAttribution.Primitives;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution;

/// <summary>Building a store's next version in its staging folder: the features, the kernel, the list of files to commit.</summary>
public static partial class StoreUpdate
{
    /// <summary>
    /// Writes the next version's features.npy (the rows of <paramref name="parts"/> one after the other, with
    /// <paramref name="zeroRows"/> overwritten by zeros), done.bitmap, meta.json and checksums.json into <paramref name="staging"/>.
    /// </summary>
    private static void StageFeatures(string staging, StoreMeta next, IReadOnlyList<FeatureStore> parts, IReadOnlyList<long> zeroRows)
    {
        Directory.CreateDirectory(staging);
        string path = Path.Combine(staging, StoreFiles.Features);
        var header = NpyFormat.CreatePreallocated(path, next.DType, next.Rows, next.Projector.Dim);
        long rowBytes = (long)next.Projector.Dim * next.DType.ElementSize();
        using (var output = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.None, bufferSize: 0))
        {
            long offset = header.DataOffset;
            long chunk = Math.Max(1, (16L << 20) / rowBytes);
            foreach (var part in parts)
            {
                for (long first = 0; first < part.Rows; first += chunk)
                {
                    var bytes = part.GetLocalRowsBytes(first, Math.Min(part.Rows, first + chunk));
                    RandomAccess.Write(output.SafeFileHandle, bytes, offset);
                    offset += bytes.Length;
                }
            }
            var zeros = new byte[rowBytes];
            foreach (long row in zeroRows)
            {
                RandomAccess.Write(output.SafeFileHandle, zeros, header.DataOffset + (row * rowBytes));
            }
            output.Flush(flushToDisk: true);
        }
        var done = new DoneBitmap(0, next.Rows);
        done.SetAll();
        done.WriteAtomically(Path.Combine(staging, StoreFiles.Done));
        StoreFiles.WriteMetaAtomically(staging, next);
        StoreChecksums.ForFeatures(path, header).WithFiles(staging, [StoreFiles.Meta]).Save(staging);
    }

    /// <summary>
    /// When the store is finalized, the next version's ΦᵀΦ, preconditioner.bin (the store's damping and kernel form, read
    /// from its header) and gram.bin in <paramref name="staging"/>. With <paramref name="addRows"/> (append, primal form) the
    /// store's kept ΦᵀΦ (summed again when gram.bin is missing or stale) gets the new rows; otherwise the kernel is summed
    /// over the staged rows.
    /// </summary>
    /// <returns>The relative damping, or null when the store is not finalized (then 'finalize' sums every row later).</returns>
    private static double? StageKernel(FeatureStore store, string staging, Action<Preconditioner.GramAccumulator>? addRows, IProgress<(long Done, long Total)>? progress = null)
    {
        string dir = store.Directory;
        if (Preconditioner.ReadSettings(Path.Combine(dir, StoreFiles.Preconditioner)) is not var (form, damping))
        {
            return null;
        }
        Preconditioner.GramAccumulator gram;
        if (form == KernelForm.Primal && addRows is not null)
        {
            gram = Preconditioner.GramAccumulator.TryLoad(Path.Combine(dir, StoreFiles.Gram), store.Dim, PreconditionerBuilder.StoreFingerprint(dir))
                ?? PreconditionerBuilder.Gram(dir, progress, KernelForm.Primal);
            addRows(gram);
        }
        else
        {
            gram = PreconditionerBuilder.Gram(staging, progress, form);
        }
        byte[] fingerprint = PreconditionerBuilder.StoreFingerprint(staging);
        gram.Factorize(damping, fingerprint).Save(Path.Combine(staging, StoreFiles.Preconditioner));
        if (PreconditionerBuilder.KeepsGram(gram))
        {
            gram.Save(Path.Combine(staging, StoreFiles.Gram), fingerprint);
        }
        StoreChecksums.TryLoad(staging)!.WithFiles(staging, [StoreFiles.Preconditioner, StoreFiles.Gram]).Save(staging);
        return damping;
    }

    private static void AddRows(Preconditioner.GramAccumulator gram, FeatureStore added) => PreconditionerBuilder.AddRows(gram, added, null);

    /// <summary>Every file staged in <paramref name="staging"/> (not its folders): what the commit moves into the store.</summary>
    private static string[] Files(string staging) =>
        [.. Directory.GetFiles(staging).Select(Path.GetFileName).OfType<string>().Where(n => !n.EndsWith(AtomicFile.TempSuffix, StringComparison.Ordinal)).Order(StringComparer.Ordinal)];
}
