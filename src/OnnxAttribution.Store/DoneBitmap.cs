using System.Buffers.Binary;
using System.Numerics;

namespace OnnxAttribution.Store;

/// <summary>
/// done.bitmap: which rows of a store are on disk. Layout (version 1, little-endian): the 8 ASCII bytes <c>OADONEBM</c>,
/// uint32 version = 1, uint32 reserved = 0, int64 first dataset row, int64 row count n, then ⌈n/8⌉ bytes where bit j
/// (least significant first) of byte j/8 is set when local row j is complete. Unused high bits of the last byte are zero.
/// </summary>
public sealed class DoneBitmap
{
    /// <summary>The header's length in bytes.</summary>
    public const int HeaderLength = 32;
    /// <summary>The layout version written.</summary>
    public const int Version = 1;
    private static ReadOnlySpan<byte> Magic => "OADONEBM"u8;

    private readonly byte[] _bits;

    /// <summary>A bitmap of <paramref name="rowCount"/> rows from dataset row <paramref name="firstRow"/>, none done.</summary>
    public DoneBitmap(long firstRow, long rowCount)
    {
        FirstRow = firstRow;
        RowCount = rowCount;
        _bits = new byte[checked((int)((rowCount + 7) / 8))];
    }

    /// <summary>The dataset row of local row 0.</summary>
    public long FirstRow { get; }
    /// <summary>The number of rows.</summary>
    public long RowCount { get; }

    /// <summary>Whether local row <paramref name="localRow"/> is done.</summary>
    public bool this[long localRow]
    {
        get => (_bits[localRow >> 3] & (1 << (int)(localRow & 7))) != 0;
        set
        {
            if (value)
            {
                _bits[localRow >> 3] |= (byte)(1 << (int)(localRow & 7));
            }
            else
            {
                _bits[localRow >> 3] &= (byte)~(1 << (int)(localRow & 7));
            }
        }
    }

    /// <summary>The number of rows done.</summary>
    public long CountDone()
    {
        long n = 0;
        foreach (byte b in _bits)
        {
            n += BitOperations.PopCount(b);
        }
        return n;
    }

    /// <summary>Marks every row done.</summary>
    public void SetAll()
    {
        _bits.AsSpan().Fill(0xff);
        int tail = (int)(RowCount & 7);
        if (tail != 0)
        {
            _bits[^1] = (byte)((1 << tail) - 1);
        }
    }

    /// <summary>Writes <paramref name="path"/> atomically: a temporary file beside it, flushed to disk, then renamed over it.</summary>
    public void WriteAtomically(string path)
    {
        string tmp = path + ".tmp";
        using (var stream = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            Span<byte> header = stackalloc byte[HeaderLength];
            Magic.CopyTo(header);
            BinaryPrimitives.WriteInt32LittleEndian(header[8..], Version);
            BinaryPrimitives.WriteInt32LittleEndian(header[12..], 0);
            BinaryPrimitives.WriteInt64LittleEndian(header[16..], FirstRow);
            BinaryPrimitives.WriteInt64LittleEndian(header[24..], RowCount);
            stream.Write(header);
            stream.Write(_bits);
            stream.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Reads and validates <paramref name="path"/> against the rows the store should hold.</summary>
    public static DoneBitmap Read(string path, long expectedFirstRow, long expectedRowCount)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StoreFormatException($"{path}: cannot read the store's done bitmap: {e.Message}", e);
        }
        if (bytes.Length < HeaderLength || !bytes.AsSpan(0, 8).SequenceEqual(Magic))
        {
            throw new StoreFormatException($"{path}: not a done bitmap: expected the magic bytes 'OADONEBM' and a {HeaderLength}-byte header, found {bytes.Length} bytes");
        }
        int version = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8));
        if (version != Version)
        {
            throw new StoreFormatException($"{path}: field 'version': expected {Version}, found {version}");
        }
        long first = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(16));
        long count = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(24));
        if (first != expectedFirstRow || count != expectedRowCount)
        {
            throw new StoreFormatException($"{path}: fields 'firstRow', 'rowCount': expected {expectedFirstRow}, {expectedRowCount} (from meta.json), found {first}, {count}");
        }
        long expectedLength = HeaderLength + (count + 7) / 8;
        if (bytes.Length != expectedLength)
        {
            throw new StoreFormatException($"{path}: file length: expected {expectedLength} bytes for {count} rows, found {bytes.Length}");
        }
        var bitmap = new DoneBitmap(first, count);
        bytes.AsSpan(HeaderLength).CopyTo(bitmap._bits);
        int tail = (int)(count & 7);
        if (tail != 0 && (bitmap._bits[^1] >> tail) != 0)
        {
            throw new StoreFormatException($"{path}: bits past row {count - 1} are set: expected zero");
        }
        return bitmap;
    }
}
