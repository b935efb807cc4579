using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// A per-row float32 column beside a method store (an N×1 .npy, e.g. DAS's residuals or the row norms of gradient cosine),
/// whose SHA-256 the method records in method.json, so a damaged file or one left from another build is refused.
/// </summary>
internal static class RowColumn
{
    /// <summary>Writes the column (atomically) and returns its SHA-256, lower-case hex.</summary>
    public static string Write(string directory, string file, ReadOnlySpan<float> values)
    {
        var path = Path.Combine(directory, file);
        NpyFormat.WriteMatrix(path, values, values.Length, 1);
        return StoreMeta.FingerprintFile(path);
    }

    /// <summary>Reads a column written by <see cref="Write"/>, checking its length and its SHA-256.</summary>
    /// <exception cref="StoreFormatException">The file is missing, of another length, or not the file the build wrote.</exception>
    public static float[] Read(string directory, string file, long rows, string sha256)
    {
        var path = Path.Combine(directory, file);
        if (!File.Exists(path))
        {
            throw new StoreFormatException($"{path}: not found; build the store again");
        }
        string actual = StoreMeta.FingerprintFile(path);
        if (actual != sha256)
        {
            throw new StoreFormatException($"{path}: SHA-256 {actual[..12]}… differs from the {sha256[..Math.Min(12, sha256.Length)]}… recorded in " +
                $"{StoreFiles.Method}: the file is damaged or from another build; build the store again");
        }
        return SidecarMatrix.ReadAll(path, rows, 1);
    }
}
