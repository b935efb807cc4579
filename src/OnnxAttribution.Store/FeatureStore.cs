using System.Runtime.CompilerServices;

namespace OnnxAttribution.Store;

/// <summary>
/// A completed, read-only feature store: features.npy memory-mapped, rows validated against meta.json and done.bitmap.
/// Scans score queries against every row (<see cref="Scores"/>) and select the best rows (<see cref="TopK"/>).
/// </summary>
/// <remarks>
/// <para>Obtained from <see cref="Open"/>, <see cref="FeatureStoreWriter.Complete"/> or <see cref="FeatureStoreMerge.Merge"/>.
/// Row indices in this API are dataset rows: for a shard they run from <see cref="FirstRow"/> to <see cref="FirstRow"/> + <see cref="Rows"/> − 1.</para>
/// <para>Spans returned by <see cref="GetRowBytes"/> point into the mapping and stay valid until <see cref="Dispose"/>; using one after
/// that is undefined behaviour. Concurrent queries from several threads are safe; disposing while a query runs is not.</para>
/// <para>The whole of features.npy is one read-only view (64-bit address space; open + map take well under a millisecond).
/// Offsets are <c>long</c> and spans are only ever built over one row or one tile of rows, so files over 8 GiB (more than
/// int.MaxValue floats) need no special handling. Pages are faulted in on first touch: the first scan after a cold start reads
/// from disk.</para>
/// <para>Scores are float32 dot products; see <see cref="Scores"/> for their summation order and determinism.</para>
/// </remarks>
public sealed unsafe partial class FeatureStore : IDisposable
{
    /// <summary>Rows per tile of the scan: the unit of parallel work and of the top-k scratch.</summary>
    private const int TileRows = 32;

    private readonly ReadOnlyMapping _mapping;
    private byte* _data;
    private QuantizedRows? _quantized;

    private FeatureStore(string directory, StoreMeta meta, NpyHeader header, ReadOnlyMapping mapping, byte* data)
    {
        Directory = directory;
        Meta = meta;
        Header = header;
        _mapping = mapping;
        _data = data;
    }

    /// <summary>The store directory.</summary>
    public string Directory { get; }

    /// <summary>The store's meta.json.</summary>
    public StoreMeta Meta { get; }

    /// <summary>The features.npy header.</summary>
    public NpyHeader Header { get; }

    /// <summary>Rows held (N for a whole store, the shard's row count for a shard).</summary>
    public long Rows => Header.Rows;

    /// <summary>The dataset row of the first row held (0 unless the store is a shard).</summary>
    public long FirstRow => Meta.FirstRow;

    /// <summary>Columns k (the projection dimension).</summary>
    public int Dim => Meta.Projector.Dim;

    /// <summary>Element type of the rows.</summary>
    public StoreDType DType => Header.DType;

    /// <summary>Rows removed from every answer (<see cref="StoreMeta.RemovedRows"/>), ascending; empty when none.</summary>
    public IReadOnlyList<long> RemovedRows => Meta.RemovedRows ?? [];

    /// <summary>Whether <paramref name="row"/> (a dataset row) was removed: its features are zero and <see cref="TopK"/> never returns it.</summary>
    public bool IsRemoved(long row) => Meta.RemovedRows is { Count: > 0 } removed && BinarySearch(removed, row);

    private static bool BinarySearch(IReadOnlyList<long> sorted, long value)
    {
        int lo = 0, hi = sorted.Count - 1;
        while (lo <= hi)
        {
            int mid = lo + ((hi - lo) / 2);
            if (sorted[mid] == value)
            {
                return true;
            }
            (lo, hi) = sorted[mid] < value ? (mid + 1, hi) : (lo, mid - 1);
        }
        return false;
    }

    /// <summary>
    /// Each result without the removed rows, cut to <paramref name="k"/>: a scan asked for k plus the number of removed rows
    /// keeps at least k answered rows, whatever the removed rows scored.
    /// </summary>
    public TopKResult[] WithoutRemoved(TopKResult[] results, int k)
    {
        ArgumentNullException.ThrowIfNull(results);
        if (RemovedRows.Count == 0)
        {
            return results;
        }
        return results.Select(r =>
        {
            var keep = Enumerable.Range(0, r.Indices.Length).Where(i => !IsRemoved(r.Indices[i])).Take(k).ToArray();
            return new TopKResult(keep.Select(i => r.Indices[i]).ToArray(), keep.Select(i => r.Scores[i]).ToArray());
        }).ToArray();
    }

    /// <summary>Threads a scan may use; −1 (default) for all cores. Results do not depend on it.</summary>
    public int MaxDegreeOfParallelism { get; set; } = -1;

    /// <summary>Vector width override for tests of the fallback kernels.</summary>
    internal SimdWidth Width { get; set; } = SimdWidth.Auto;

    /// <summary>
    /// Opens a completed store: checks meta.json (version, sizes), the features.npy header against it and the file length, that
    /// done.bitmap marks every row, and, when <paramref name="expected"/> is given, that every setting matches it.
    /// </summary>
    /// <remarks>When the store records checksums (<see cref="StoreChecksums"/>), meta.json and a few chunks of features.npy (the first,
    /// the last and <see cref="StoreChecksums.RandomChunksOnOpen"/> drawn at random, a few MiB) are checked against them; a full
    /// check of every byte is StoreVerifier (in OnnxAttribution.Core) (the <c>verify</c> verb).</remarks>
    /// <exception cref="StoreFormatException">A missing or damaged file, an incomplete store, a sampled chunk or meta.json that
    /// does not match its checksum, an 8-bit copy (<see cref="StoreQuantizer"/>) not made from these rows, or settings that differ
    /// from <paramref name="expected"/> (the message lists each difference).</exception>
    public static FeatureStore Open(string directory, StoreMeta? expected = null)
    {
        var store = OpenUnchecked(directory, expected);
        try
        {
            store.CheckSampledChunks();
            if (store.QuantizedCopyProblem(StoreChecksums.TryLoad(directory)) is { } stale)
            {
                throw new StoreFormatException(stale);
            }
            return store;
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    /// <summary>As <see cref="Open"/>, without the checksum checks (the verifier checks every chunk itself).</summary>
    public static FeatureStore OpenUnchecked(string directory, StoreMeta? expected = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!System.IO.Directory.Exists(directory))
        {
            throw new StoreFormatException($"{directory}: store directory not found");
        }
        // A change (append, remove) that a kill interrupted after it was decided is finished first.
        StoreCommit.Recover(directory);
        var meta = StoreMeta.Load(Path.Combine(directory, StoreFiles.Meta));
        string featuresPath = Path.Combine(directory, StoreFiles.Features);
        var header = NpyFormat.ReadHeader(featuresPath);
        StoreFiles.CheckHeaderAgainstMeta(featuresPath, header, meta);
        string donePath = Path.Combine(directory, StoreFiles.Done);
        var done = DoneBitmap.Read(donePath, meta.FirstRow, meta.ShardRows);
        long missing = meta.ShardRows - done.CountDone();
        if (missing != 0)
        {
            throw new StoreFormatException($"{donePath}: the store is incomplete: {missing} of {meta.ShardRows} rows are not done; " +
                "resume the featurization (FeatureStoreWriter.OpenOrCreate) to finish it");
        }
        if (expected is not null)
        {
            var diffs = meta.DescribeDifferences(expected);
            if (diffs.Count > 0)
            {
                throw new StoreFormatException($"{Path.Combine(directory, StoreFiles.Meta)}: the store does not match the query settings:\n  " + string.Join("\n  ", diffs));
            }
        }
        var mapping = ReadOnlyMapping.Open(featuresPath, "the feature matrix");
        var store = new FeatureStore(directory, meta, header, mapping, mapping.Start + header.DataOffset);
        try
        {
            store._quantized = QuantizedRows.TryOpen(directory, header);
        }
        catch
        {
            store.Dispose();
            throw;
        }
        return store;
    }

    /// <summary>The bytes of the store's local rows [<paramref name="first"/>, <paramref name="end"/>) (at most 2 GiB), valid until <see cref="Dispose"/>.</summary>
    public ReadOnlySpan<byte> GetLocalRowsBytes(long first, long end)
    {
        ObjectDisposedException.ThrowIf(_data == null, this);
        long rowBytes = (long)Dim * DType.ElementSize();
        return new ReadOnlySpan<byte>(_data + (first * rowBytes), checked((int)((end - first) * rowBytes)));
    }

    /// <summary>
    /// Checks meta.json and a few chunks of features.npy against checksums.json; a store whose meta.json says it records
    /// checksums must have the file. Stores made before checksums existed have neither and are not checked.
    /// </summary>
    private void CheckSampledChunks()
    {
        var sums = StoreChecksums.TryLoad(Directory);
        string sumsPath = Path.Combine(Directory, StoreFiles.Checksums);
        if (sums is null)
        {
            if (Meta.Checksums is not null)
            {
                throw new StoreFormatException($"{sumsPath}: missing, but meta.json (field 'checksums') says the store records checksums: " +
                    "the store is incomplete or was copied without it; copy it again, or featurize again");
            }
            return;
        }
        sums.Validate(sumsPath, Header);
        if (sums.CheckFile(Directory, StoreFiles.Meta, "restore the store's meta.json, or featurize again") is { } problem)
        {
            throw new StoreFormatException(problem);
        }
        long chunks = sums.FeatureChunks.Count;
        var sample = new SortedSet<long> { 0, chunks - 1 };
        for (int i = 0; i < StoreChecksums.RandomChunksOnOpen; i++)
        {
            sample.Add(Random.Shared.NextInt64(Math.Max(1, chunks)));
        }
        foreach (long c in sample.Where(c => c >= 0 && c < chunks))
        {
            var (first, end) = sums.ChunkRange(c);
            string found = StoreChecksums.Hash(GetLocalRowsBytes(first, end));
            if (found != sums.FeatureChunks[(int)c])
            {
                throw new StoreFormatException(sums.ChunkMismatch(Path.Combine(Directory, StoreFiles.Features), c, FirstRow, found) +
                    $"; run 'verify --store {Directory}' for every damaged row, then restore the store from a copy or featurize again");
            }
        }
    }

    /// <summary>The stored bytes of dataset row <paramref name="row"/> (Dim elements of <see cref="DType"/>, little-endian).</summary>
    /// <remarks>The span points into the mapping and is valid until <see cref="Dispose"/>.</remarks>
    public ReadOnlySpan<byte> GetRowBytes(long row)
    {
        byte* p = RowPointer(row);
        return new ReadOnlySpan<byte>(p, Dim * DType.ElementSize());
    }

    /// <summary>Copies dataset row <paramref name="row"/> into <paramref name="destination"/> as float32.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The row is not held by this store.</exception>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than <see cref="Dim"/>.</exception>
    public void ReadRow(long row, Span<float> destination)
    {
        if (destination.Length < Dim)
        {
            throw new ArgumentException($"destination holds {destination.Length} elements, a row has {Dim}", nameof(destination));
        }
        byte* p = RowPointer(row);
        if (DType == StoreDType.Float32)
        {
            new ReadOnlySpan<float>(p, Dim).CopyTo(destination);
        }
        else
        {
            fixed (float* d = destination)
            {
                ScanKernels.HalfToSingle(Width, (ushort*)p, d, Dim);
            }
        }
    }

    /// <summary>
    /// scores[q·Rows + i] = ⟨query q, row FirstRow + i⟩ for every query and every row held.
    /// </summary>
    /// <param name="queries">queryCount × Dim float32 values, row-major.</param>
    /// <param name="queryCount">Number of queries; any count, scanned together so each row is read once for the batch.</param>
    /// <param name="scores">queryCount × Rows values, query-major.</param>
    /// <remarks>
    /// Float32 accumulation. A pair's score is summed in one fixed order (chunks of 1024 columns, one vector accumulator per chunk,
    /// a fixed lane reduction), so it is the same for any batch, thread count or partition on one machine and vector width; it differs
    /// from a sequential scalar sum by normal float32 rounding (relative error about √Dim·2⁻²⁴ of Σ|qᵢrᵢ|).
    /// For more than int.MaxValue scores use <see cref="TopK"/>, which keeps no full score matrix.
    /// </remarks>
    /// <exception cref="ArgumentException">Span lengths do not match queryCount, Dim and Rows.</exception>
    public void Scores(ReadOnlySpan<float> queries, int queryCount, Span<float> scores)
    {
        CheckQueries(queries, queryCount);
        long needed = checked(queryCount * Rows);
        if (scores.Length != needed)
        {
            throw new ArgumentException($"scores holds {scores.Length} elements, expected queryCount × Rows = {queryCount} × {Rows} = {needed}", nameof(scores));
        }
        if (queryCount == 0 || Rows == 0)
        {
            return;
        }
        float[] q = CopyQueries(queries);
        fixed (float* s = scores)
        {
            nint sp = (nint)s;
            long rows = Rows;
            RunTiles(q, queryCount, static (_, _, _) => null, (ctx, tileStart, tileRows, _) =>
            {
                ScanKernels.ScoreTile(Width, _data + (tileStart * Dim * DType.ElementSize()), DType, tileRows, Dim,
                    ctx.Queries, queryCount, (float*)sp + tileStart, rows, ctx.Scratch);
            });
        }
    }

    /// <summary>The <paramref name="k"/> best rows for each query, by descending dot product (ties: lower row first; NaN last);
    /// removed rows (<see cref="RemovedRows"/>) are never among them.</summary>
    /// <param name="queries">queryCount × Dim float32 values, row-major.</param>
    /// <param name="queryCount">Number of queries, scanned together.</param>
    /// <param name="k">Rows to return per query; fewer when the store holds fewer.</param>
    /// <remarks>Scores are those of <see cref="Scores"/>. Each worker keeps a bounded min-heap per query; the heaps are merged at the end,
    /// and the order is total, so the result does not depend on the thread count. With an 8-bit copy (<see cref="HasQuantizedRows"/>,
    /// <see cref="UseQuantizedRows"/>) the copy is scanned and its candidates re-scored from the exact rows: the same rows and
    /// score bits as without it.</remarks>
    /// <exception cref="ArgumentException">The queries span does not hold queryCount × Dim values.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="k"/> is negative.</exception>
    public TopKResult[] TopK(ReadOnlySpan<float> queries, int queryCount, int k)
    {
        CheckQueries(queries, queryCount);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        if (UseQuantizedRows && _quantized is not null && QuantizedTopK(queries, queryCount, k) is { } fromCopy)
        {
            return fromCopy;
        }
        int kept = (int)Math.Min(k + (long)RemovedRows.Count, Rows);
        float[] q = CopyQueries(queries);
        var workers = RunTiles(q, queryCount,
            static (qn, kept, _) => new TileState(qn, kept),
            (ctx, tileStart, tileRows, state) =>
            {
                var st = (TileState)state!;
                ScanKernels.ScoreTile(Width, _data + (tileStart * Dim * DType.ElementSize()), DType, tileRows, Dim,
                    ctx.Queries, queryCount, st.TileScoresPtr, TileRows, ctx.Scratch);
                for (int j = 0; j < queryCount; j++)
                {
                    st.Heaps[j].Offer(new ReadOnlySpan<float>(st.TileScoresPtr + (j * TileRows), tileRows), FirstRow + tileStart);
                }
            }, kept);
        var results = new TopKResult[queryCount];
        for (int j = 0; j < queryCount; j++)
        {
            results[j] = TopKHeap.Merge(workers.Select(w => ((TileState)w.State!).Heaps[j]), kept);
        }
        return WithoutRemoved(results, k);
    }

    private sealed class TileState
    {
        private readonly float[] _tileScores;

        public TileState(int queryCount, int k)
        {
            _tileScores = GC.AllocateUninitializedArray<float>(Math.Max(1, queryCount * TileRows), pinned: true);
            Heaps = new TopKHeap[queryCount];
            for (int j = 0; j < queryCount; j++)
            {
                Heaps[j] = new TopKHeap(k);
            }
        }

        public TopKHeap[] Heaps { get; }
        public float* TileScoresPtr => (float*)Unsafe.AsPointer(ref _tileScores[0]);
    }

    /// <summary>Per-worker context: pinned scratch and the pinned query copy.</summary>
    private sealed class WorkerContext
    {
        private readonly float[] _scratch = GC.AllocateUninitializedArray<float>(ScanKernels.ScratchFloats, pinned: true);
        private readonly float[] _queries;

        public WorkerContext(float[] pinnedQueries, object? state)
        {
            _queries = pinnedQueries;
            State = state;
        }

        public object? State { get; }
        public float* Scratch => (float*)Unsafe.AsPointer(ref _scratch[0]);
        public float* Queries => (float*)Unsafe.AsPointer(ref _queries[0]);
    }

    private delegate void TileBody(WorkerContext context, long tileStart, int tileRows, object? state);

    /// <summary>Runs <paramref name="body"/> over all tiles, in parallel over contiguous row ranges; returns the workers used.</summary>
    private List<WorkerContext> RunTiles(float[] pinnedQueries, int queryCount, Func<int, int, object?, object?> makeState, TileBody body, int k = 0)
    {
        ObjectDisposedException.ThrowIf(_data == null, this);
        long tiles = (Rows + TileRows - 1) / TileRows;
        int threads = MaxDegreeOfParallelism > 0 ? MaxDegreeOfParallelism : Environment.ProcessorCount;
        // Several ranges per thread balance uneven progress; each range is contiguous so reads stay sequential.
        int ranges = (int)Math.Min(tiles, threads * 8L);
        var workers = new List<WorkerContext>();
        if (ranges == 0)
        {
            for (int t = 0; t < Math.Max(1, threads); t++)
            {
                workers.Add(new WorkerContext(pinnedQueries, makeState(queryCount, k, null)));
            }
            return workers;
        }
        Parallel.For(0, ranges, new ParallelOptions { MaxDegreeOfParallelism = threads },
            () => new WorkerContext(pinnedQueries, makeState(queryCount, k, null)),
            (range, _, ctx) =>
            {
                long t0 = tiles * range / ranges, t1 = tiles * (range + 1) / ranges;
                for (long t = t0; t < t1; t++)
                {
                    long start = t * TileRows;
                    int count = (int)Math.Min(TileRows, Rows - start);
                    body(ctx, start, count, ctx.State);
                }
                return ctx;
            },
            ctx =>
            {
                lock (workers)
                {
                    workers.Add(ctx);
                }
            });
        return workers;
    }

    private static float[] CopyQueries(ReadOnlySpan<float> queries)
    {
        var copy = GC.AllocateUninitializedArray<float>(Math.Max(1, queries.Length), pinned: true);
        queries.CopyTo(copy);
        return copy;
    }

    private void CheckQueries(ReadOnlySpan<float> queries, int queryCount)
    {
        ObjectDisposedException.ThrowIf(_data == null, this);
        ArgumentOutOfRangeException.ThrowIfNegative(queryCount);
        long needed = (long)queryCount * Dim;
        if (queries.Length != needed)
        {
            throw new ArgumentException($"queries holds {queries.Length} values, expected queryCount × Dim = {queryCount} × {Dim} = {needed}", nameof(queries));
        }
    }

    private byte* RowPointer(long row)
    {
        ObjectDisposedException.ThrowIf(_data == null, this);
        long local = row - FirstRow;
        if (local < 0 || local >= Rows)
        {
            throw new ArgumentOutOfRangeException(nameof(row), row, $"the store holds rows {FirstRow} to {FirstRow + Rows - 1}");
        }
        return _data + (local * Dim * DType.ElementSize());
    }

    /// <summary>Unmaps the file. Spans from <see cref="GetRowBytes"/> are invalid afterwards.</summary>
    public void Dispose()
    {
        if (_data == null)
        {
            return;
        }
        _data = null;
        _quantized?.Dispose();
        _mapping.Dispose();
    }
}
