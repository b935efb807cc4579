using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Store;

/// <summary>
/// NumPy's <c>.npy</c> format, version 1.0, for C-ordered 2-D float32/float16 (and the 8-bit copy's int8) matrices, so that
/// <c>numpy.load(path, mmap_mode="r")</c> reads a store's features.
/// </summary>
/// <remarks>
/// Layout: the 6 magic bytes <c>\x93NUMPY</c>, version bytes <c>01 00</c>, the header length as little-endian uint16, then the
/// header: an ASCII Python dict literal <c>{'descr': '&lt;f4', 'fortran_order': False, 'shape': (N, k), }</c> padded with
/// spaces and ended by <c>\n</c> so that the data starts at a multiple of 64 bytes (NumPy's padding rule: 1 to 64 spaces).
/// The reader also accepts version 2.0 (uint32 header length), which NumPy writes only for headers over 64 KiB.
/// </remarks>
public static class NpyFormat
{
    /// <summary>The data offset is a multiple of this (NumPy's <c>ARRAY_ALIGN</c>).</summary>
    public const int Alignment = 64;

    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>The complete header bytes (magic, version, length, padded dict) for a C-ordered rows × columns matrix.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A negative size.</exception>
    public static byte[] BuildHeader(StoreDType dtype, long rows, long columns)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(columns);
        string dict = string.Create(CultureInfo.InvariantCulture,
            $"{{'descr': '{dtype.NpyDescr()}', 'fortran_order': False, 'shape': ({rows}, {columns}), }}");
        // NumPy: hlen = len(dict) + 1 (the newline); padlen = 64 - ((10 + hlen) % 64).
        int hlen = dict.Length + 1;
        int pad = Alignment - ((10 + hlen) % Alignment);
        int headerLength = hlen + pad;
        var bytes = new byte[10 + headerLength];
        Magic.CopyTo(bytes);
        bytes[6] = 1;
        bytes[7] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), checked((ushort)headerLength));
        Encoding.ASCII.GetBytes(dict, bytes.AsSpan(10));
        bytes.AsSpan(10 + dict.Length, pad).Fill((byte)' ');
        bytes[^1] = (byte)'\n';
        return bytes;
    }

    /// <summary>
    /// Creates (or replaces) <paramref name="path"/> with the header and a zero-filled data section of the full size, so that rows
    /// can be written in place in any order. The disk space is reserved up front (fallocate on Linux), so a disk too small for
    /// the whole file is found now, not after hours of work.
    /// </summary>
    /// <exception cref="AttributionException">The file cannot be created or its space reserved (the message says how many
    /// bytes are needed); no file is left.</exception>
    public static NpyHeader CreatePreallocated(string path, StoreDType dtype, long rows, long columns)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] header = BuildHeader(dtype, rows, columns);
        var result = new NpyHeader(dtype, rows, columns, header.Length);
        try
        {
            using var stream = new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.Create,
                Access = FileAccess.Write,
                Share = FileShare.None,
                PreallocationSize = result.FileLength,
            });
            stream.Write(header);
            stream.SetLength(result.FileLength);
            stream.Flush(flushToDisk: true);
        }
        catch (IOException e)
        {
            File.Delete(path);
            throw new AttributionException($"{path}: cannot reserve the {AtomicFile.DescribeBytes(result.FileLength)} a {rows}×{columns} {dtype.NpyDescr()} matrix needs " +
                $"(free that much space, or write the store elsewhere): {e.Message}", e);
        }
        return result;
    }

    /// <summary>
    /// Writes a small float32 matrix (a store's per-row sidecar, e.g. N×1) in one piece: to a temporary file, flushed, then
    /// renamed over <paramref name="path"/>, so a reader sees the old file or the whole new one.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="values"/> does not hold rows × columns values.</exception>
    public static void WriteMatrix(string path, ReadOnlySpan<float> values, long rows, long columns)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (values.Length != checked(rows * columns))
        {
            throw new ArgumentException($"a {rows}×{columns} matrix needs {rows * columns} values, got {values.Length}", nameof(values));
        }
        string tmp = path + StoreFiles.TempSuffix;
        using (var stream = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            stream.Write(BuildHeader(StoreDType.Float32, rows, columns));
            if (BitConverter.IsLittleEndian)
            {
                stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values));
            }
            else
            {
                var bytes = new byte[values.Length * sizeof(float)];
                for (int i = 0; i < values.Length; i++)
                {
                    BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), values[i]);
                }
                stream.Write(bytes);
            }
            stream.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Reads a whole small matrix (float16 widened) into memory, row-major, with its header.</summary>
    /// <exception cref="StoreFormatException">The file is missing or damaged (see <see cref="ReadHeader(string)"/>).</exception>
    public static (NpyHeader Header, float[] Values) ReadMatrix(string path)
    {
        var header = ReadHeader(path);
        var bytes = new byte[checked((int)header.DataLength)];
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
        {
            stream.Position = header.DataOffset;
            stream.ReadExactly(bytes);
        }
        var values = new float[checked((int)(header.Rows * header.Columns))];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = header.DType switch
            {
                StoreDType.Float32 => BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * 4)),
                StoreDType.Float16 => (float)BinaryPrimitives.ReadHalfLittleEndian(bytes.AsSpan(i * 2)),
                _ => (sbyte)bytes[i],
            };
        }
        return (header, values);
    }

    /// <summary>Reads and validates the header of <paramref name="path"/>, including that the file length matches the shape.</summary>
    /// <exception cref="StoreFormatException">The file is missing, is not a version 1.0/2.0 <c>.npy</c> file, is not a C-ordered 2-D
    /// float32/float16 matrix, or its length does not match its header.</exception>
    public static NpyHeader ReadHeader(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StoreFormatException($"{path}: cannot open the feature matrix: {e.Message}", e);
        }
        using (stream)
        {
            var header = ReadHeader(stream, path);
            if (stream.Length != header.FileLength)
            {
                throw new StoreFormatException(
                    $"{path}: file length is {stream.Length} bytes, but the header (shape ({header.Rows}, {header.Columns}), " +
                    $"descr '{header.DType.NpyDescr()}', data at {header.DataOffset}) needs {header.FileLength}");
            }
            return header;
        }
    }

    /// <summary>Reads and validates a header from the start of <paramref name="stream"/>; <paramref name="name"/> is used in messages.</summary>
    /// <exception cref="StoreFormatException">The header is malformed or describes something other than a C-ordered 2-D float32/float16 matrix.</exception>
    public static NpyHeader ReadHeader(Stream stream, string name)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Span<byte> prefix = stackalloc byte[12];
        int got = stream.ReadAtLeast(prefix[..10], 10, throwOnEndOfStream: false);
        if (got < 10 || !prefix[..6].SequenceEqual(Magic))
        {
            throw new StoreFormatException($"{name}: not a .npy file: expected the magic bytes \\x93NUMPY at offset 0, found {Describe(prefix[..Math.Min(got, 6)])}");
        }
        byte major = prefix[6], minor = prefix[7];
        int prefixLength;
        long headerLength;
        if (major == 1 && minor == 0)
        {
            prefixLength = 10;
            headerLength = BinaryPrimitives.ReadUInt16LittleEndian(prefix[8..]);
        }
        else if (major == 2 && minor == 0)
        {
            if (stream.ReadAtLeast(prefix[10..12], 2, throwOnEndOfStream: false) < 2)
            {
                throw new StoreFormatException($"{name}: .npy header truncated: expected a 4-byte header length at offset 8");
            }
            prefixLength = 12;
            headerLength = BinaryPrimitives.ReadUInt32LittleEndian(prefix[8..]);
        }
        else
        {
            throw new StoreFormatException($"{name}: .npy version: expected 1.0 (or 2.0), found {major}.{minor}");
        }
        if (headerLength > 1 << 20)
        {
            throw new StoreFormatException($"{name}: .npy header length: expected at most 1 MiB, found {headerLength} bytes");
        }
        var text = new byte[headerLength];
        if (stream.ReadAtLeast(text, text.Length, throwOnEndOfStream: false) < text.Length)
        {
            throw new StoreFormatException($"{name}: .npy header truncated: expected {headerLength} header bytes after offset {prefixLength}");
        }
        long dataOffset = prefixLength + headerLength;
        if (dataOffset % Alignment != 0)
        {
            // NumPy itself only warns for versions < 3 here; a store always writes aligned headers, and the scan relies on it.
            throw new StoreFormatException($"{name}: .npy data offset: expected a multiple of {Alignment}, found {dataOffset}");
        }
        if (text.Length == 0 || text[^1] != (byte)'\n')
        {
            throw new StoreFormatException($"{name}: .npy header: expected it to end with '\\n'");
        }
        foreach (byte b in text)
        {
            if (b is < 0x20 or > 0x7e && b != (byte)'\n')
            {
                throw new StoreFormatException($"{name}: .npy header: expected ASCII text, found byte 0x{b:x2}");
            }
        }
        var parsed = HeaderParser.Parse(Encoding.ASCII.GetString(text), name);
        var dtype = parsed.Descr switch
        {
            "<f4" => StoreDType.Float32,
            "<f2" => StoreDType.Float16,
            "|i1" => StoreDType.Int8,
            _ => throw new StoreFormatException($"{name}: .npy field 'descr': expected '<f4', '<f2' or '|i1', found '{parsed.Descr}'"),
        };
        if (parsed.FortranOrder)
        {
            throw new StoreFormatException($"{name}: .npy field 'fortran_order': expected False (C order), found True");
        }
        if (parsed.Shape.Count != 2)
        {
            throw new StoreFormatException($"{name}: .npy field 'shape': expected 2 dimensions (N, k), found ({string.Join(", ", parsed.Shape)})");
        }
        var header = new NpyHeader(dtype, parsed.Shape[0], parsed.Shape[1], dataOffset);
        try
        {
            _ = header.FileLength;
        }
        catch (OverflowException)
        {
            throw new StoreFormatException($"{name}: .npy field 'shape': ({header.Rows}, {header.Columns}) is too large for a 64-bit file offset");
        }
        return header;
    }

    private static string Describe(ReadOnlySpan<byte> bytes) =>
        bytes.IsEmpty ? "an empty file" : string.Join(" ", bytes.ToArray().Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));

    /// <summary>A parser for the small subset of Python literals a .npy header uses: a dict of str keys to str, bool and int tuples.</summary>
    private ref struct HeaderParser
    {
        private readonly string _text;
        private readonly string _name;
        private int _pos;

        private HeaderParser(string text, string name)
        {
            _text = text;
            _name = name;
            _pos = 0;
        }

        public static (string Descr, bool FortranOrder, List<long> Shape) Parse(string text, string name)
        {
            var p = new HeaderParser(text, name);
            string? descr = null;
            bool? fortran = null;
            List<long>? shape = null;
            p.Expect('{');
            while (true)
            {
                p.SkipSpaces();
                if (p.Peek() == '}')
                {
                    p._pos++;
                    break;
                }
                string key = p.ReadString();
                p.Expect(':');
                switch (key)
                {
                    case "descr" when descr is null:
                        descr = p.ReadString();
                        break;
                    case "fortran_order" when fortran is null:
                        fortran = p.ReadBool();
                        break;
                    case "shape" when shape is null:
                        shape = p.ReadTuple();
                        break;
                    case "descr" or "fortran_order" or "shape":
                        throw p.Error($"key '{key}' appears twice");
                    default:
                        throw p.Error($"unexpected key '{key}': expected only 'descr', 'fortran_order' and 'shape'");
                }
                p.SkipSpaces();
                if (p.Peek() == ',')
                {
                    p._pos++;
                }
                else if (p.Peek() != '}')
                {
                    throw p.Error($"expected ',' or '}}' at position {p._pos}, found '{p.Peek()}'");
                }
            }
            p.SkipSpaces();
            if (p._pos != text.Length)
            {
                throw p.Error($"unexpected text after the dict at position {p._pos}");
            }
            if (descr is null || fortran is null || shape is null)
            {
                string missing = string.Join(", ", new[] { ("descr", descr is null), ("fortran_order", fortran is null), ("shape", shape is null) }
                    .Where(m => m.Item2).Select(m => $"'{m.Item1}'"));
                throw p.Error($"missing key(s) {missing}");
            }
            return (descr, fortran.Value, shape);
        }

        private readonly char Peek() => _pos < _text.Length ? _text[_pos] : '\0';

        private void SkipSpaces()
        {
            while (_pos < _text.Length && _text[_pos] is ' ' or '\n')
            {
                _pos++;
            }
        }

        private void Expect(char c)
        {
            SkipSpaces();
            if (Peek() != c)
            {
                throw Error($"expected '{c}' at position {_pos}, found '{Peek()}'");
            }
            _pos++;
        }

        private string ReadString()
        {
            SkipSpaces();
            char quote = Peek();
            if (quote is not ('\'' or '"'))
            {
                throw Error($"expected a quoted string at position {_pos}, found '{quote}'");
            }
            int end = _text.IndexOf(quote, _pos + 1);
            if (end < 0)
            {
                throw Error($"unterminated string at position {_pos}");
            }
            string s = _text.Substring(_pos + 1, end - _pos - 1);
            _pos = end + 1;
            return s;
        }

        private bool ReadBool()
        {
            SkipSpaces();
            if (string.CompareOrdinal(_text, _pos, "True", 0, 4) == 0)
            {
                _pos += 4;
                return true;
            }
            if (string.CompareOrdinal(_text, _pos, "False", 0, 5) == 0)
            {
                _pos += 5;
                return false;
            }
            throw Error($"field 'fortran_order': expected True or False at position {_pos}");
        }

        private List<long> ReadTuple()
        {
            Expect('(');
            var values = new List<long>();
            while (true)
            {
                SkipSpaces();
                if (Peek() == ')')
                {
                    _pos++;
                    return values;
                }
                int start = _pos;
                while (_pos < _text.Length && char.IsAsciiDigit(_text[_pos]))
                {
                    _pos++;
                }
                if (_pos == start || !long.TryParse(_text.AsSpan(start, _pos - start), NumberStyles.None, CultureInfo.InvariantCulture, out long v))
                {
                    throw Error($"field 'shape': expected a non-negative integer at position {start}");
                }
                values.Add(v);
                SkipSpaces();
                if (Peek() == ',')
                {
                    _pos++;
                }
                else if (Peek() != ')')
                {
                    throw Error($"field 'shape': expected ',' or ')' at position {_pos}, found '{Peek()}'");
                }
            }
        }

        private readonly StoreFormatException Error(string what) => new($"{_name}: .npy header: {what}");
    }
}
