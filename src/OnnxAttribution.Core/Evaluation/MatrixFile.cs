using System.Runtime.InteropServices;
using OnnxAttribution.Core.Store;

namespace OnnxAttribution.Core.Evaluation;

/// <summary>Small float32 matrices (scores, losses) as .npy files, written through a temporary file so they are never half-written.</summary>
public static class MatrixFile
{
    public static void Save(string path, ReadOnlySpan<float> values, long rows, long columns)
    {
        if (values.Length != rows * columns)
        {
            throw new ArgumentException($"{rows}×{columns} needs {rows * columns} values, got {values.Length}");
        }
        using (var stream = new FileStream(path + ".tmp", FileMode.Create, FileAccess.Write))
        {
            stream.Write(NpyFormat.BuildHeader(StoreDType.Float32, rows, columns));
            stream.Write(MemoryMarshal.AsBytes(values));
        }
        File.Move(path + ".tmp", path, overwrite: true);
    }

    /// <summary>Reads a float32 matrix, or null when the file does not exist.</summary>
    /// <exception cref="StoreFormatException">The file is not a float32 .npy matrix.</exception>
    public static (float[] Values, long Rows, long Columns)? TryLoad(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }
        var header = NpyFormat.ReadHeader(path);
        if (header.DType != StoreDType.Float32)
        {
            throw new StoreFormatException($"{path}: expected float32, found {header.DType}");
        }
        var bytes = File.ReadAllBytes(path);
        if (bytes.LongLength != header.FileLength)
        {
            throw new StoreFormatException($"{path}: {bytes.LongLength} bytes; the header says {header.FileLength}");
        }
        var values = MemoryMarshal.Cast<byte, float>(bytes.AsSpan(checked((int)header.DataOffset))).ToArray();
        return (values, header.Rows, header.Columns);
    }
}
