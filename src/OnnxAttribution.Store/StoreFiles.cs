using System.Text;

namespace OnnxAttribution.Store;

/// <summary>
/// The layout of a store folder: the name of every file a store can hold, in one place. A method store
/// (<c>featurize --method M</c>) is one folder; an ensemble store holds one such folder per member beside ensemble.json.
/// </summary>
/// <remarks>
/// Every store has <see cref="Features"/>, <see cref="Meta"/> and <see cref="Done"/> while it is built, then
/// <see cref="Checksums"/>, <see cref="Source"/> and, last, <see cref="Method"/> (its presence says the store is complete).
/// The others belong to the methods that need them. A file being replaced is written as its name plus
/// <c>.tmp</c> and renamed over it.
/// </remarks>
public static class StoreFiles
{
    /// <summary>The N×k feature matrix, NumPy .npy version 1.0.</summary>
    public const string Features = "features.npy";

    /// <summary>The settings the rows depend on, JSON (<see cref="StoreMeta"/>).</summary>
    public const string Meta = "meta.json";

    /// <summary>Which rows are complete (see <see cref="FeatureStoreWriter"/>).</summary>
    public const string Done = "done.bitmap";

    /// <summary>SHA-256 of every file of a complete store (<see cref="StoreChecksums"/>).</summary>
    public const string Checksums = "checksums.json";

    /// <summary>The lock a writer holds while it builds the store (<see cref="StoreLock"/>).</summary>
    public const string WriterLock = "writer.lock";

    /// <summary>Who holds <see cref="WriterLock"/>: process id and host, for the message a second writer gets.</summary>
    public const string WriterLockHolder = "writer.lock.holder";

    /// <summary>The method and the settings it used; written last, so its presence says the store is complete.</summary>
    public const string Method = "method.json";

    /// <summary>Where the rows came from (training set, model, subset), as the user named them.</summary>
    public const string Source = "source.json";

    /// <summary>The kernel inverse (ΦᵀΦ + λI)⁻¹ or its dual form, written by finalize.</summary>
    public const string Preconditioner = "preconditioner.bin";

    /// <summary>Per-row training losses (TRAK's Q), float32 .npy.</summary>
    public const string Losses = "losses.npy";

    /// <summary>Per-row feature norms (pair normalization, gradient cosine), float32 .npy.</summary>
    public const string Norms = "norms.npy";

    /// <summary>DAS: the per-row residuals, float32 .npy.</summary>
    public const string Residuals = "residuals.npy";

    /// <summary>K-FAC / EK-FAC: the per-layer curvature factors.</summary>
    public const string Kfac = "kfac.bin";

    /// <summary>K-FAC / EK-FAC: the factors' running sums while they are estimated (resumable).</summary>
    public const string KfacPartial = "kfac.partial";

    /// <summary>An ensemble store: its members and how their scores combine.</summary>
    public const string Ensemble = "ensemble.json";

    /// <summary>The store's versions (<see cref="StoreHistory"/>).</summary>
    public const string History = "history.json";

    /// <summary>ΦᵀΦ in float64 as finalize accumulated it, so <c>append</c> adds only the new rows (<c>gram.bin</c>).</summary>
    public const string Gram = "gram.bin";

    /// <summary>The 8-bit copy of the rows, int8 N×k .npy (<c>'|i1'</c>): row i is round(features_i / s_i), s_i from
    /// <see cref="QuantizedScales"/>; written by <see cref="StoreQuantizer"/>, scanned first by <see cref="FeatureStore.TopK"/>.</summary>
    public const string QuantizedFeatures = "features.i8.npy";

    /// <summary>The 8-bit copy's per-row scales s_i = max|features_i| / 127, float32 N×1 .npy (NaN: a row the copy cannot bound).</summary>
    public const string QuantizedScales = "features.i8scale.npy";

    /// <summary>The folder inside a store where append and remove build its next version (<see cref="StoreCommit"/>).</summary>
    public const string Staging = ".next";

    internal const string TempSuffix = ".tmp";

    /// <summary>Writes meta.json through a temporary file, flushed, then renamed over the old one.</summary>
    public static void WriteMetaAtomically(string directory, StoreMeta meta)
    {
        string path = Path.Combine(directory, Meta);
        string tmp = path + TempSuffix;
        using (var stream = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            stream.Write(Encoding.UTF8.GetBytes(meta.ToJson()));
            stream.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Throws unless the .npy header describes the matrix <paramref name="meta"/> says the store holds.</summary>
    internal static void CheckHeaderAgainstMeta(string featuresPath, NpyHeader header, StoreMeta meta)
    {
        if (header.DType != meta.DType)
        {
            throw new StoreFormatException($"{featuresPath}: field 'descr': expected '{meta.DType.NpyDescr()}' (meta.json dtype), found '{header.DType.NpyDescr()}'");
        }
        if (header.Rows != meta.ShardRows || header.Columns != meta.Projector.Dim)
        {
            throw new StoreFormatException(
                $"{featuresPath}: field 'shape': expected ({meta.ShardRows}, {meta.Projector.Dim}) (meta.json rows {meta.Rows}, " +
                $"shard {meta.Shard.Index} of {meta.Shard.Count}, projector.dim), found ({header.Rows}, {header.Columns})");
        }
    }
}
