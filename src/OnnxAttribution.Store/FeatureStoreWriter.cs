using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace OnnxAttribution.Store;

/// <summary>
/// Writes a feature store, resumably: rows in any order, in place, with progress made durable by <see cref="Flush"/>.
/// <see cref="Complete"/> turns the finished directory into a read-only <see cref="FeatureStore"/>.
/// </summary>
/// <remarks>
/// <para>Durability: <see cref="WriteRows"/> writes row data into the pre-allocated features.npy and marks the rows done in memory.
/// <see cref="Flush"/> first forces the row data to disk (fsync), then replaces done.bitmap atomically (a temporary file, fsync,
/// rename). So at any moment a process kill leaves a done.bitmap that marks only rows whose bytes are on disk; rows written after
/// the last flush are simply pending again on resume. Rewriting them with the same values gives a byte-identical file.</para>
/// <para><see cref="Dispose"/> without <see cref="Complete"/> does not flush: it is what a kill leaves, minus the lost page cache.
/// Call <see cref="Flush"/> every few thousand rows, and before a graceful stop.</para>
/// <para>Row indices are dataset rows; a shard's writer accepts only its own rows (<see cref="FirstRow"/> … <see cref="FirstRow"/> + <see cref="RowCount"/> − 1).
/// Not thread-safe: used from one thread at a time. One writer per directory: a writer holds the folder's <see cref="StoreLock"/>
/// from creation to <see cref="Dispose"/>, and a second writer is refused (<see cref="StoreLockedException"/>).</para>
/// </remarks>
public sealed class FeatureStoreWriter : IDisposable
{
    /// <summary>Largest write issued at once (whole rows are split across writes only by this).</summary>
    private const int MaxWriteBytes = 64 << 20;

    private readonly FileStream _features;
    private readonly DoneBitmap _done;
    private readonly string _donePath;
    private readonly StoreLock _lock;
    private readonly long _dataOffset;
    private long _doneCount;
    private bool _disposed;

    private FeatureStoreWriter(string directory, StoreMeta meta, FileStream features, long dataOffset, DoneBitmap done, StoreLock storeLock)
    {
        _lock = storeLock;
        Directory = directory;
        Meta = meta;
        _features = features;
        _dataOffset = dataOffset;
        _done = done;
        _donePath = Path.Combine(directory, StoreFiles.Done);
        _doneCount = done.CountDone();
    }

    /// <summary>The store directory.</summary>
    public string Directory { get; }

    /// <summary>The store's settings, as written in meta.json.</summary>
    public StoreMeta Meta { get; }

    /// <summary>The first dataset row this store holds.</summary>
    public long FirstRow => _done.FirstRow;

    /// <summary>Rows this store holds.</summary>
    public long RowCount => _done.RowCount;

    /// <summary>Rows written (done on disk, or written since the last <see cref="Flush"/>).</summary>
    public long DoneCount => _doneCount;

    /// <summary>Columns per row (<see cref="ProjectorSpec.Dim"/>).</summary>
    public int Dim => Meta.Projector.Dim;

    /// <summary>Creates a new store in <paramref name="directory"/>, which must not exist or be empty.</summary>
    /// <exception cref="StoreFormatException">The directory already holds files, or <paramref name="meta"/> is invalid.</exception>
    /// <exception cref="StoreLockedException">Another writer holds the directory.</exception>
    /// <exception cref="OnnxAttribution.Primitives.AttributionException">The disk has no room for features.npy (the message says how much is needed).</exception>
    public static FeatureStoreWriter Create(string directory, StoreMeta meta)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(meta);
        meta.Validate($"{directory}: meta");
        if (System.IO.Directory.Exists(directory) && System.IO.Directory.EnumerateFileSystemEntries(directory).Any())
        {
            throw new StoreFormatException($"{directory}: cannot create a store: the directory is not empty (use OpenOrCreate to resume a store)");
        }
        return Locked(directory, storeLock => CreateFresh(directory, meta, storeLock));
    }

    /// <summary>
    /// Resumes the store in <paramref name="directory"/> when its meta.json equals <paramref name="meta"/>; creates it when the
    /// directory does not exist, is empty, or holds only the remains of a creation that was killed before meta.json was written.
    /// </summary>
    /// <exception cref="StoreFormatException">The existing store was made with other settings (every difference is listed),
    /// or its files are damaged or do not match its meta.json, or the directory holds other files.</exception>
    /// <exception cref="StoreLockedException">Another writer holds the directory.</exception>
    /// <exception cref="OnnxAttribution.Primitives.AttributionException">The disk has no room for a new features.npy (the message says how much is needed).</exception>
    public static FeatureStoreWriter OpenOrCreate(string directory, StoreMeta meta)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(meta);
        meta.Validate($"{directory}: meta");
        return Locked(directory, storeLock => OpenOrCreateLocked(directory, meta, storeLock));
    }

    /// <summary>Runs <paramref name="open"/> holding the directory's lock, which the writer it returns keeps (released on failure).</summary>
    private static FeatureStoreWriter Locked(string directory, Func<StoreLock, FeatureStoreWriter> open)
    {
        var storeLock = StoreLock.Acquire(directory, "a feature store writer");
        try
        {
            return open(storeLock);
        }
        catch
        {
            storeLock.Dispose();
            throw;
        }
    }

    private static FeatureStoreWriter OpenOrCreateLocked(string directory, StoreMeta meta, StoreLock storeLock)
    {
        string metaPath = Path.Combine(directory, StoreFiles.Meta);
        if (!File.Exists(metaPath))
        {
            if (System.IO.Directory.Exists(directory))
            {
                // meta.json is written last on creation: without it no row was ever reported written, so the rest can go.
                string[] ours = [StoreFiles.Features, StoreFiles.Done, StoreFiles.Done + StoreFiles.TempSuffix, StoreFiles.Meta + StoreFiles.TempSuffix,
                    StoreFiles.Checksums, StoreFiles.Checksums + StoreFiles.TempSuffix];
                var others = System.IO.Directory.EnumerateFileSystemEntries(directory).Select(Path.GetFileName)
                    .Where(n => !ours.Contains(n) && n is not StoreFiles.WriterLock and not StoreFiles.WriterLockHolder).ToList();
                if (others.Count > 0)
                {
                    throw new StoreFormatException($"{directory}: not a store (no {StoreFiles.Meta}) and not empty: found {string.Join(", ", others)}");
                }
                foreach (string name in ours)
                {
                    File.Delete(Path.Combine(directory, name));
                }
            }
            return CreateFresh(directory, meta, storeLock);
        }
        var existing = StoreMeta.Load(metaPath);
        var diffs = existing.DescribeDifferences(meta, "store has", "writer asks");
        if (diffs.Count > 0)
        {
            throw new StoreFormatException($"{metaPath}: cannot resume: the store was made with other settings:\n  " + string.Join("\n  ", diffs) +
                "\nUse another directory, or remove this one to start over.");
        }
        string featuresPath = Path.Combine(directory, StoreFiles.Features);
        var header = NpyFormat.ReadHeader(featuresPath);
        StoreFiles.CheckHeaderAgainstMeta(featuresPath, header, existing);
        string donePath = Path.Combine(directory, StoreFiles.Done);
        // A kill during Flush can leave the temporary bitmap; the renamed one is the last complete state.
        File.Delete(donePath + StoreFiles.TempSuffix);
        var done = DoneBitmap.Read(donePath, existing.FirstRow, existing.ShardRows);
        var stream = OpenFeatures(featuresPath);
        return new FeatureStoreWriter(directory, existing, stream, header.DataOffset, done, storeLock);
    }

    private static FeatureStoreWriter CreateFresh(string directory, StoreMeta meta, StoreLock storeLock)
    {
        // Complete writes checksums.json; meta.json says so, so that a complete store without it is refused.
        meta = meta with { Checksums = StoreChecksums.AlgorithmName };
        string featuresPath = Path.Combine(directory, StoreFiles.Features);
        var header = NpyFormat.CreatePreallocated(featuresPath, meta.DType, meta.ShardRows, meta.Projector.Dim);
        var done = new DoneBitmap(meta.FirstRow, meta.ShardRows);
        done.WriteAtomically(Path.Combine(directory, StoreFiles.Done));
        StoreFiles.WriteMetaAtomically(directory, meta);
        return new FeatureStoreWriter(directory, meta, OpenFeatures(featuresPath), header.DataOffset, done, storeLock);
    }

    private static FileStream OpenFeatures(string path) =>
        new(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read, bufferSize: 0);

    /// <summary>True when dataset row <paramref name="row"/> is done (on disk, or written since the last flush).</summary>
    public bool IsDone(long row)
    {
        long local = Local(row);
        return _done[local];
    }

    /// <summary>The dataset rows not yet written, ascending. Computed on each call.</summary>
    public IReadOnlyList<long> PendingRows
    {
        get
        {
            var pending = new List<long>((int)Math.Min(int.MaxValue, RowCount - _doneCount));
            for (long i = 0; i < RowCount; i++)
            {
                if (!_done[i])
                {
                    pending.Add(FirstRow + i);
                }
            }
            return pending;
        }
    }

    /// <summary>
    /// Writes <paramref name="count"/> consecutive rows starting at dataset row <paramref name="firstRow"/>, in place, converting to
    /// float16 (round to nearest even) when the store is float16, and marks them done in memory (durable after <see cref="Flush"/>).
    /// </summary>
    /// <param name="firstRow">Dataset row of values[0 .. Dim).</param>
    /// <param name="count">Rows in <paramref name="values"/>.</param>
    /// <param name="values">count × Dim float32 values, row-major.</param>
    /// <exception cref="ArgumentOutOfRangeException">A row outside this store.</exception>
    /// <exception cref="ArgumentException"><paramref name="values"/> does not hold count × Dim values.</exception>
    /// <exception cref="InvalidOperationException">A row is already done: rewriting it could leave a done row half-written.</exception>
    public void WriteRows(long firstRow, int count, ReadOnlySpan<float> values)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (values.Length != (long)count * Dim)
        {
            throw new ArgumentException($"values holds {values.Length} floats, expected count × Dim = {count} × {Dim}", nameof(values));
        }
        if (count == 0)
        {
            return;
        }
        long local = Local(firstRow);
        Local(firstRow + count - 1);
        for (long i = 0; i < count; i++)
        {
            if (_done[local + i])
            {
                throw new InvalidOperationException($"{Directory}: row {firstRow + i} is already done; write only PendingRows");
            }
        }
        int elementSize = Meta.DType.ElementSize();
        int rowsPerWrite = Math.Max(1, MaxWriteBytes / (Dim * elementSize));
        Half[]? halves = Meta.DType == StoreDType.Float16 ? new Half[Math.Min(count, rowsPerWrite) * Dim] : null;
        for (int r = 0; r < count; r += rowsPerWrite)
        {
            int n = Math.Min(rowsPerWrite, count - r);
            var chunk = values.Slice(r * Dim, n * Dim);
            long offset = _dataOffset + ((local + r) * Dim * elementSize);
            if (halves is null)
            {
                RandomAccess.Write(_features.SafeFileHandle, MemoryMarshal.AsBytes(chunk), offset);
            }
            else
            {
                var h = halves.AsSpan(0, chunk.Length);
                TensorPrimitives.ConvertToHalf(chunk, h);
                RandomAccess.Write(_features.SafeFileHandle, MemoryMarshal.AsBytes(h), offset);
            }
        }
        for (long i = 0; i < count; i++)
        {
            _done[local + i] = true;
        }
        _doneCount += count;
    }

    /// <summary>Makes the rows written so far durable: row data to disk first, then done.bitmap replaced atomically.</summary>
    public void Flush()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _features.Flush(flushToDisk: true);
        _done.WriteAtomically(_donePath);
    }

    /// <summary>
    /// Flushes, checks that every row is done, closes the writer, records the checksums of the finished features.npy and
    /// meta.json in checksums.json (one more read of the file; kept when a finished store is completed again), and opens the
    /// finished store read-only.
    /// </summary>
    /// <exception cref="InvalidOperationException">Rows are missing (the message says how many and the first of them).</exception>
    public FeatureStore Complete()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Flush();
        long missing = RowCount - _doneCount;
        if (missing > 0)
        {
            long firstMissing = PendingRows[0];
            throw new InvalidOperationException($"{Directory}: cannot complete the store: {missing} of {RowCount} rows are not written (first: row {firstMissing})");
        }
        Dispose();
        if (StoreChecksums.TryLoad(Directory) is null)
        {
            string featuresPath = Path.Combine(Directory, StoreFiles.Features);
            StoreChecksums.ForFeatures(featuresPath, NpyFormat.ReadHeader(featuresPath)).WithFiles(Directory, [StoreFiles.Meta]).Save(Directory);
        }
        return FeatureStore.Open(Directory, Meta);
    }

    private long Local(long row)
    {
        long local = row - FirstRow;
        if (local < 0 || local >= RowCount)
        {
            throw new ArgumentOutOfRangeException(nameof(row), row, $"this store holds rows {FirstRow} to {FirstRow + RowCount - 1}");
        }
        return local;
    }

    /// <summary>Closes features.npy without flushing; rows written since the last <see cref="Flush"/> will be pending on resume.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _features.Dispose();
        _lock.Dispose();
    }
}
