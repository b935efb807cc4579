using System.Runtime.InteropServices;

namespace OnnxAttribution.Store;

/// <summary>
/// A small float32 matrix beside a store's features (e.g. <c>norms.npy</c>, one column per row of the store), in NumPy's
/// <c>.npy</c> format (<see cref="NpyFormat"/>), written row by row in place while the store is featurized.
/// </summary>
/// <remarks>
/// Durability follows <see cref="FeatureStoreWriter"/>: write a batch's sidecar rows, <see cref="Flush"/>, then write and flush
/// the features, so done.bitmap never marks a row whose sidecar values are not on disk. Not thread-safe.
/// </remarks>
public sealed class SidecarMatrix : IDisposable
{
    private readonly FileStream _file;
    private readonly NpyHeader _header;
    private readonly long _firstRow;

    private SidecarMatrix(string path, FileStream file, NpyHeader header, long firstRow)
    {
        Path = path;
        _file = file;
        _header = header;
        _firstRow = firstRow;
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>
    /// Opens the sidecar for writing the rows <paramref name="firstRow"/> … + <paramref name="rows"/> − 1 of a store, creating it
    /// (zero-filled) when <paramref name="create"/> is set or the file is missing and no row of the store is done yet.
    /// </summary>
    /// <param name="path">The .npy file.</param>
    /// <param name="firstRow">The dataset row of the store's first row (a shard's first row).</param>
    /// <param name="rows">The store's rows.</param>
    /// <param name="columns">Values per row.</param>
    /// <param name="create">True when the store has no done row: start the file afresh.</param>
    /// <exception cref="StoreFormatException">The file is missing although rows are done, or its shape is not rows × columns float32.</exception>
    public static SidecarMatrix OpenOrCreate(string path, long firstRow, long rows, int columns, bool create)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentOutOfRangeException.ThrowIfLessThan(columns, 1);
        NpyHeader header;
        if (create)
        {
            header = NpyFormat.CreatePreallocated(path, StoreDType.Float32, rows, columns);
        }
        else
        {
            if (!File.Exists(path))
            {
                throw new StoreFormatException($"{path}: missing, but the store beside it has done rows; remove the store folder to start over");
            }
            header = Check(path, rows, columns);
        }
        return new SidecarMatrix(path, new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read, bufferSize: 0), header, firstRow);
    }

    /// <summary>Writes <paramref name="values"/> (whole rows) from dataset row <paramref name="firstRow"/> on, in place.</summary>
    public void WriteRows(long firstRow, ReadOnlySpan<float> values)
    {
        long local = firstRow - _firstRow;
        if (values.Length % _header.Columns != 0 || local < 0 || local + (values.Length / _header.Columns) > _header.Rows)
        {
            throw new ArgumentOutOfRangeException(nameof(firstRow), firstRow, $"{Path}: {values.Length} values from row {firstRow} do not fit rows " +
                $"{_firstRow}..{_firstRow + _header.Rows - 1} of {_header.Columns} columns");
        }
        RandomAccess.Write(_file.SafeFileHandle, MemoryMarshal.AsBytes(values), _header.DataOffset + (local * _header.Columns * sizeof(float)));
    }

    /// <summary>Forces the written rows to disk.</summary>
    public void Flush() => _file.Flush(flushToDisk: true);

    /// <inheritdoc/>
    public void Dispose() => _file.Dispose();

    /// <summary>Reads a whole sidecar: rows × columns float32 values, row-major.</summary>
    /// <exception cref="StoreFormatException">The file is missing or not a rows × columns float32 .npy matrix.</exception>
    public static float[] ReadAll(string path, long rows, int columns)
    {
        ArgumentNullException.ThrowIfNull(path);
        var header = Check(path, rows, columns);
        var values = new float[checked(rows * columns)];
        var bytes = MemoryMarshal.AsBytes(values.AsSpan());
        using var file = File.OpenHandle(path);
        for (int done = 0; done < bytes.Length;)
        {
            int n = RandomAccess.Read(file, bytes[done..], header.DataOffset + done);
            if (n == 0)
            {
                throw new StoreFormatException($"{path}: truncated at byte {header.DataOffset + done}");
            }
            done += n;
        }
        return values;
    }

    private static NpyHeader Check(string path, long rows, int columns)
    {
        var header = NpyFormat.ReadHeader(path);
        if (header.DType != StoreDType.Float32 || header.Rows != rows || header.Columns != columns)
        {
            throw new StoreFormatException($"{path}: field 'shape'/'descr': expected ({rows}, {columns}) '<f4', found ({header.Rows}, {header.Columns}) '{header.DType.NpyDescr()}'");
        }
        return header;
    }
}
