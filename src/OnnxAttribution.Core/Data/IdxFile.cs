using System.Buffers.Binary;
using System.IO.Compression;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Data;

/// <summary>
/// Reads and writes IDX files (the MNIST format, LeCun et al.): a big-endian header of two zero bytes, a type code
/// (0x08 = unsigned byte), the number of dimensions, then one int32 per dimension, then the data.
/// <c>*-idx3-ubyte</c> holds images [N, H, W], <c>*-idx1-ubyte</c> labels [N]. Gzip-compressed files are recognised
/// by their magic bytes (1F 8B), not by their name.
/// </summary>
public static class IdxFile
{
    /// <summary>The IDX type code of unsigned bytes, the only element type this reader accepts.</summary>
    public const byte UnsignedByte = 0x08;

    /// <summary>Reads an idx3 image file as 8-bit pixels [N, H, W].</summary>
    /// <exception cref="UserInputException">The file is missing, not an idx3-ubyte file, or shorter than its header says.</exception>
    public static (int Count, int Height, int Width, byte[] Pixels) ReadImages(string path)
    {
        var (dims, data) = Read(path, expectedRank: 3, what: "images (idx3-ubyte: N×H×W)");
        return (dims[0], dims[1], dims[2], data);
    }

    /// <summary>Reads an idx1 label file.</summary>
    /// <exception cref="UserInputException">The file is missing, not an idx1-ubyte file, or shorter than its header says.</exception>
    public static int[] ReadLabels(string path)
    {
        var (_, data) = Read(path, expectedRank: 1, what: "labels (idx1-ubyte: N)");
        return Array.ConvertAll(data, b => (int)b);
    }

    /// <summary>Reads an image file and, when given, its label file into a dataset of 1-channel images.</summary>
    /// <exception cref="UserInputException">A file is unreadable or the two files disagree on N.</exception>
    public static ImageDataset ReadDataset(string imagesPath, string? labelsPath, string name)
    {
        var (n, h, w, pixels) = ReadImages(imagesPath);
        int[]? labels = null;
        if (labelsPath is not null)
        {
            labels = ReadLabels(labelsPath);
            if (labels.Length != n)
            {
                throw new UserInputException($"{labelsPath}: holds {labels.Length} labels but {imagesPath} holds {n} images");
            }
        }
        return ImageDataset.FromBytes(name, n, 1, h, w, pixels, labels);
    }

    /// <summary>Writes 8-bit images [N, H, W] as idx3-ubyte, gzip-compressed when <paramref name="gzip"/> is set.</summary>
    public static void WriteImages(string path, int count, int height, int width, ReadOnlySpan<byte> pixels, bool gzip)
    {
        if (pixels.Length != (long)count * height * width)
        {
            throw new ArgumentException($"{count}×{height}×{width} images need {(long)count * height * width} bytes, got {pixels.Length}", nameof(pixels));
        }
        Write(path, [count, height, width], pixels, gzip);
    }

    /// <summary>Writes labels (each 0..255) as idx1-ubyte, gzip-compressed when <paramref name="gzip"/> is set.</summary>
    public static void WriteLabels(string path, IReadOnlyList<int> labels, bool gzip)
    {
        var bytes = new byte[labels.Count];
        for (int i = 0; i < bytes.Length; i++)
        {
            bytes[i] = checked((byte)labels[i]);
        }
        Write(path, [labels.Count], bytes, gzip);
    }

    /// <summary>Whether the file starts with the gzip magic bytes 1F 8B.</summary>
    public static bool IsGzip(string path)
    {
        using var f = File.OpenRead(path);
        Span<byte> magic = stackalloc byte[2];
        return f.ReadAtLeast(magic, 2, throwOnEndOfStream: false) == 2 && magic[0] == 0x1F && magic[1] == 0x8B;
    }

    /// <summary>The rank (number of dimensions) in an IDX file's header, or null when the file is not IDX.</summary>
    public static int? PeekRank(string path)
    {
        using var stream = OpenDecompressed(path);
        Span<byte> magic = stackalloc byte[4];
        if (stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false) < 4 || magic[0] != 0 || magic[1] != 0)
        {
            return null;
        }
        return magic[3];
    }

    private static Stream OpenDecompressed(string path)
    {
        if (!File.Exists(path))
        {
            throw new UserInputException($"IDX file not found: {path}");
        }
        bool gz = IsGzip(path);
        Stream f = File.OpenRead(path);
        return gz ? new GZipStream(f, CompressionMode.Decompress) : f;
    }

    private static (int[] Dims, byte[] Data) Read(string path, int expectedRank, string what)
    {
        ArgumentNullException.ThrowIfNull(path);
        try
        {
            using var stream = OpenDecompressed(path);
            Span<byte> magic = stackalloc byte[4];
            int got = stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false);
            if (got < 4)
            {
                throw new UserInputException($"{path}: too short for an IDX header ({got} bytes; expected {what})");
            }
            if (magic[0] != 0 || magic[1] != 0)
            {
                throw new UserInputException($"{path}: not an IDX file: the magic number starts with {magic[0]:X2} {magic[1]:X2}, expected 00 00 (expected {what})");
            }
            if (magic[2] != UnsignedByte)
            {
                throw new UserInputException($"{path}: IDX element type code is 0x{magic[2]:X2}; only 0x08 (unsigned byte) is supported");
            }
            if (magic[3] != expectedRank)
            {
                throw new UserInputException($"{path}: IDX header has {magic[3]} dimensions; expected {expectedRank} for {what}");
            }
            var dims = new int[expectedRank];
            Span<byte> buf = stackalloc byte[4];
            long total = 1;
            for (int d = 0; d < expectedRank; d++)
            {
                if (stream.ReadAtLeast(buf, 4, throwOnEndOfStream: false) < 4)
                {
                    throw new UserInputException($"{path}: IDX header ends inside dimension {d} of {expectedRank}");
                }
                dims[d] = BinaryPrimitives.ReadInt32BigEndian(buf);
                if (dims[d] < 0 || (d > 0 && dims[d] == 0))
                {
                    throw new UserInputException($"{path}: IDX dimension {d} is {dims[d]}; expected a positive size");
                }
                total *= dims[d];
            }
            if (total > Array.MaxLength)
            {
                throw new UserInputException($"{path}: IDX header dims [{string.Join(",", dims)}] describe {total} bytes, more than this reader holds in one array");
            }
            var data = new byte[total];
            int read = stream.ReadAtLeast(data, data.Length, throwOnEndOfStream: false);
            if (read < data.Length)
            {
                throw new UserInputException($"{path}: IDX header dims [{string.Join(",", dims)}] need {total} data bytes but the file ends after {read}");
            }
            if (stream.ReadByte() >= 0)
            {
                throw new UserInputException($"{path}: more data than the IDX header dims [{string.Join(",", dims)}] describe ({total} bytes)");
            }
            return (dims, data);
        }
        catch (InvalidDataException e)
        {
            throw new UserInputException($"{path}: damaged gzip stream ({e.Message})", e);
        }
        catch (IOException e)
        {
            throw new UserInputException($"{path}: cannot read ({e.Message})", e);
        }
    }

    private static void Write(string path, int[] dims, ReadOnlySpan<byte> data, bool gzip)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }
        var tmp = path + ".tmp";
        using (var file = File.Create(tmp))
        using (Stream s = gzip ? new GZipStream(file, CompressionLevel.SmallestSize) : file)
        {
            Span<byte> header = stackalloc byte[4 + 4 * dims.Length];
            header[0] = 0;
            header[1] = 0;
            header[2] = UnsignedByte;
            header[3] = (byte)dims.Length;
            for (int d = 0; d < dims.Length; d++)
            {
                BinaryPrimitives.WriteInt32BigEndian(header[(4 + 4 * d)..], dims[d]);
            }
            s.Write(header);
            s.Write(data);
        }
        File.Move(tmp, path, overwrite: true);
    }
}
