using OnnxAttribution.Primitives;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// The kernel inverse of a finished feature store: accumulates the kernel (ΦᵀΦ, or ΦΦᵀ in the dual form), factorises it
/// with the damping and writes <see cref="StoreFiles.Preconditioner"/> beside the features; gives a store another damping
/// without featurizing again. Input: a whole store folder; output: the factor file and its checksum.
/// </summary>
public static class PreconditionerBuilder
{
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

    /// <summary>
    /// Accumulates the kernel in float64 over the store — ΦᵀΦ, or ΦΦᵀ in the dual form (<see cref="Preconditioner.ChooseForm"/>
    /// unless <paramref name="form"/> is given) — factorises it plus λI and writes preconditioner.bin beside the features.
    /// </summary>
    /// <remarks>Holds the store's <see cref="StoreLock"/> and reserves the file's disk space before the work, so a store being
    /// written or a full disk is refused at once; on any failure no preconditioner.bin.tmp is left.</remarks>
    /// <exception cref="UserInputException"><paramref name="relativeDamping"/> is negative or not finite, the store is a shard,
    /// or the dual form's features do not fit in memory.</exception>
    /// <exception cref="StoreFormatException">A feature is NaN or infinite (the message names the row and column).</exception>
    /// <exception cref="StoreLockedException">Another writer holds the store.</exception>
    public static Preconditioner Finalize(string storeDirectory, double relativeDamping, IProgress<(long Done, long Total)>? progress = null, KernelForm? form = null)
    {
        ArgumentNullException.ThrowIfNull(storeDirectory);
        RequireDamping(relativeDamping);
        using var storeLock = StoreLock.Acquire(storeDirectory, "finalize");
        using var store = OpenWhole(storeDirectory);
        var chosen = form ?? Preconditioner.ChooseForm(store.Rows, store.Dim);
        using var output = AtomicFile.Create(Path.Combine(storeDirectory, StoreFiles.Preconditioner), Preconditioner.FileLength(OrderOf(store, chosen)));
        var gram = Gram(store, progress, chosen);
        byte[] fingerprint = StoreFingerprint(storeDirectory);
        if (KeepsGram(gram))
        {
            // Kept so that 'append' adds only its new rows to it (the same bits as one pass over all rows).
            gram.Save(Path.Combine(storeDirectory, StoreFiles.Gram), fingerprint);
        }
        return WritePreconditioner(store, gram, relativeDamping, output, fingerprint, "finalize", StoreFiles.Preconditioner, StoreFiles.Gram);
    }

    /// <summary>
    /// Whether finalize keeps ΦᵀΦ in gram.bin: primal kernels up to k = <see cref="Preconditioner.LargestAutomaticPrimalDim"/>
    /// (at most 256 MiB); above that <c>append</c> sums the old rows again.
    /// </summary>
    internal static bool KeepsGram(Preconditioner.GramAccumulator gram) =>
        gram.Form == KernelForm.Primal && gram.Order <= Preconditioner.LargestAutomaticPrimalDim;

    /// <summary>The order of the kernel matrix of <paramref name="form"/> over a store: k, or N rows.</summary>
    private static int OrderOf(FeatureStore store, KernelForm form) =>
        form == KernelForm.Primal ? store.Dim : DualKernel.RequireRows(store);

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
        using var output = AtomicFile.Create(Path.Combine(storeDirectory, StoreFiles.Preconditioner), Preconditioner.FileLength(OrderOf(store, gram.Form)));
        return WritePreconditioner(store, gram, relativeDamping, output, StoreFingerprint(storeDirectory), "redamp", StoreFiles.Preconditioner);
    }

    /// <summary>
    /// The kernel of a whole (merged) store in float64: ΦᵀΦ, or ΦΦᵀ in the dual form (<see cref="Preconditioner.ChooseForm"/>
    /// unless <paramref name="form"/> is given).
    /// </summary>
    /// <exception cref="UserInputException">The store is one shard of several, or the dual form's features do not fit in memory.</exception>
    /// <exception cref="StoreFormatException">A feature is NaN or infinite (the message names the row and column).</exception>
    public static Preconditioner.GramAccumulator Gram(string storeDirectory, IProgress<(long Done, long Total)>? progress = null, KernelForm? form = null)
    {
        ArgumentNullException.ThrowIfNull(storeDirectory);
        using var store = OpenWhole(storeDirectory);
        return Gram(store, progress, form ?? Preconditioner.ChooseForm(store.Rows, store.Dim));
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

    private static Preconditioner.GramAccumulator Gram(FeatureStore store, IProgress<(long Done, long Total)>? progress, KernelForm form)
    {
        if (form == KernelForm.Dual)
        {
            return DualKernel.Gram(store, progress);
        }
        var gram = new Preconditioner.GramAccumulator(store.Dim);
        AddRows(gram, store, progress);
        return gram;
    }

    /// <summary>
    /// Adds every row of <paramref name="store"/> to ΦᵀΦ in row order. Each entry receives its rows' products one after the
    /// other, so adding a store's rows to the sum of another's gives the same bits as one pass over both in that order.
    /// </summary>
    /// <exception cref="StoreFormatException">A feature is NaN or infinite.</exception>
    internal static void AddRows(Preconditioner.GramAccumulator gram, FeatureStore store, IProgress<(long Done, long Total)>? progress)
    {
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
    }

    /// <summary>Factorises, writes preconditioner.bin through <paramref name="output"/>, records the checksums of the files the step wrote
    /// (a re-damping leaves gram.bin as it was) and the version.</summary>
    private static Preconditioner WritePreconditioner(FeatureStore store, Preconditioner.GramAccumulator gram, double relativeDamping, AtomicFile output,
        byte[] fingerprint, string change, params string[] written)
    {
        var pre = gram.Factorize(relativeDamping, fingerprint);
        output.Write(pre.WriteTo);
        output.Commit();
        StoreChecksums.RecordFiles(store, replace: true, written);
        StoreHistory.Record(store.Directory, change, new StoreChange { Damping = relativeDamping });
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
            throw new UserInputException($"{Path.Combine(methodStore, StoreFiles.Method)}: field 'settings.damping' is missing; the {method} store has no damping to change");
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
    internal static void RequireFinite(FeatureStore store, long row, ReadOnlySpan<float> values)
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
