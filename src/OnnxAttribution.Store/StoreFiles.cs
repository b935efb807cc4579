using System.Text;

namespace OnnxAttribution.Core.Store;

/// <summary>The file names of a store directory and the small helpers that write them.</summary>
public static class StoreFiles
{
    /// <summary>The N×k feature matrix, NumPy .npy version 1.0.</summary>
    public const string Features = "features.npy";

    /// <summary>The settings the rows depend on, JSON (<see cref="StoreMeta"/>).</summary>
    public const string Meta = "meta.json";

    /// <summary>Which rows are complete (see <see cref="FeatureStoreWriter"/>).</summary>
    public const string Done = "done.bitmap";

    internal const string TempSuffix = ".tmp";

    /// <summary>Writes meta.json through a temporary file, flushed, then renamed over the old one.</summary>
    internal static void WriteMetaAtomically(string directory, StoreMeta meta)
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
