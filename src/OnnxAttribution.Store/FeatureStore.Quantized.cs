using System.Runtime.CompilerServices;

namespace OnnxAttribution.Store;

/// <summary>The top-k scan over the 8-bit copy of the rows (<see cref="StoreQuantizer"/>) with an exact re-rank.</summary>
public sealed unsafe partial class FeatureStore
{
    private bool[]? _removedMask;
    private long _removedHeld = -1;

    /// <summary>Whether the store holds an 8-bit copy of its rows (<see cref="StoreFiles.QuantizedFeatures"/>), made by <see cref="StoreQuantizer"/>.</summary>
    public bool HasQuantizedRows => _quantized is not null;

    /// <summary>
    /// Whether <see cref="TopK"/> scans the 8-bit copy when the store has one (default true); false scans the exact rows only.
    /// Answers are the same either way; only the bytes read differ.
    /// </summary>
    public bool UseQuantizedRows { get; set; } = true;

    /// <summary>Null when the store has no 8-bit copy or a copy made from its current rows and recorded in checksums.json; otherwise
    /// what is wrong with it, naming the file and the remedy.</summary>
    public string? QuantizedCopyProblem(StoreChecksums? sums)
    {
        if (_quantized is null)
        {
            return null;
        }
        string path = Path.Combine(Directory, StoreFiles.QuantizedFeatures);
        string remedy = $"run 'quantize --store {Directory}' again, or delete {StoreFiles.QuantizedFeatures} and {StoreFiles.QuantizedScales} to query the exact rows";
        if (sums?.QuantizedFrom is null || !sums.Files.TryGetValue(StoreFiles.QuantizedFeatures, out var recorded)
            || !sums.Files.ContainsKey(StoreFiles.QuantizedScales))
        {
            return $"{path}: not recorded in {StoreFiles.Checksums} (field 'quantizedFrom' and its files): the 8-bit copy was not finished by " +
                $"quantize, or the rows changed after it; {remedy}";
        }
        string now = sums.FeaturesFingerprint();
        if (sums.QuantizedFrom != now)
        {
            return $"{path}: stale: made from other rows ({StoreFiles.Checksums} field 'quantizedFrom' {sums.QuantizedFrom}) than features.npy holds " +
                $"now ({now}); {remedy}";
        }
        long length = new FileInfo(path).Length;
        return length != recorded.Bytes
            ? $"{path}: {length} bytes, {StoreFiles.Checksums} records {recorded.Bytes}: the file was changed after quantize; {remedy}"
            : sums.CheckFile(Directory, StoreFiles.QuantizedScales, remedy);
    }

    /// <summary>
    /// <see cref="TopK"/> through the 8-bit copy, or null when it cannot help (no query, a query with NaN or ±Infinity, no row
    /// left, or so many candidates that the exact scan is cheaper): the caller then scans the exact rows.
    /// </summary>
    /// <remarks>
    /// One pass over the int8 rows (<see cref="Int8Kernels"/>, the query quantised to int16) gives each row an interval
    /// [lower, upper] that holds its exact score (<see cref="QuantizedRows.ScoreBound"/>). L is the k-th best lower bound over the rows not removed; a row whose upper bound
    /// is below L has k rows certainly above it and cannot be in the answer, so the rows with upper ≥ L are a superset of it.
    /// Each of them is scored again by the exact kernel from features.npy (only their pages are read), and the best k of those
    /// scores, in <see cref="TopKHeap"/>'s total order, are the answer: the same rows and the same score bits as the exact scan.
    /// Workers prune their candidates against their own running L (never above the final one) so the lists stay short; when
    /// all workers together hold more than max(4096, 16·k) candidates a query the exact scan is cheaper, and memory stays bounded.
    /// </remarks>
    internal TopKResult[]? QuantizedTopK(ReadOnlySpan<float> queries, int queryCount, int k)
    {
        var copy = _quantized!;
        long live = Rows - (RemovedRows.Count > 0 ? RemovedHeld() : 0);
        int kept = (int)Math.Min(k, live);
        if (queryCount == 0 || kept == 0)
        {
            return null;
        }
        var factors = new double[queryCount];
        var steps = new double[queryCount];
        short[] quantized = GC.AllocateUninitializedArray<short>(Math.Max(1, queryCount * Dim), pinned: true);
        for (int j = 0; j < queryCount; j++)
        {
            var query = queries.Slice(j * Dim, Dim);
            double l1 = 0;
            foreach (float v in query)
            {
                l1 += Math.Abs(v);
            }
            steps[j] = Int8Kernels.QuantizeQuery(query, quantized.AsSpan(j * Dim, Dim));
            factors[j] = QuantizedRows.BoundFactor(l1, steps[j], Dim);
            if (double.IsPositiveInfinity(factors[j]))
            {
                return null;
            }
        }
        bool[]? removed = RemovedRows.Count > 0 ? RemovedMask() : null;
        long limit = queryCount * Math.Max(1L << 12, 16L * kept);
        // abandon[0]: set once the candidates of all workers together outgrow the limit; abandon[1]: how many they hold.
        var abandon = new long[2];
        nint shorts = (nint)Unsafe.AsPointer(ref quantized[0]);
        float[] q = CopyQueries(queries);
        var workers = RunTiles(q, queryCount, static (qn, kept, _) => new BoundState(qn, kept), (_, tileStart, tileRows, state) =>
        {
            if (Volatile.Read(ref abandon[0]) != 0)
            {
                return;
            }
            var st = (BoundState)state!;
            Int8Kernels.DotTile(Width, copy.Data + (tileStart * Dim), tileRows, Dim, (short*)shorts, queryCount, st.TileSumsPtr, TileRows);
            for (int j = 0; j < queryCount; j++)
            {
                var bound = new RowBound(copy.Scales, removed, steps[j], factors[j], Dim);
                int added = st.Queries[j].Offer(st.TileSumsPtr + (j * TileRows), tileRows, tileStart, bound);
                if (added != 0 && Interlocked.Add(ref abandon[1], added) > limit)
                {
                    Volatile.Write(ref abandon[0], 1);
                }
            }
        }, kept);
        GC.KeepAlive(quantized);
        if (abandon[0] != 0)
        {
            return null;
        }
        var results = new TopKResult[queryCount];
        Parallel.For(0, queryCount, new ParallelOptions { MaxDegreeOfParallelism = MaxDegreeOfParallelism }, j =>
        {
            results[j] = ReRank(workers.Select(w => ((BoundState)w.State!).Queries[j]).ToList(), q, j, kept);
        });
        return results;
    }

    /// <summary>The best <paramref name="kept"/> rows by exact score among the candidates whose upper bound reaches L.</summary>
    private TopKResult ReRank(List<CandidateBounds> parts, float[] pinnedQueries, int query, int kept)
    {
        var lowers = parts.SelectMany(p => p.Lowers).OrderByDescending(v => v).ToList();
        double cut = lowers.Count >= kept ? lowers[kept - 1] : double.NegativeInfinity;
        var heap = new TopKHeap(kept);
        float* scratch = stackalloc float[ScanKernels.ScratchFloats];
        float score;
        fixed (float* q = pinnedQueries)
        {
            foreach (var (row, upper) in parts.SelectMany(p => p.Candidates))
            {
                if (upper < cut)
                {
                    continue;
                }
                ScanKernels.ScoreTile(Width, _data + (row * Dim * DType.ElementSize()), DType, 1, Dim, q + ((long)query * Dim), 1, &score, 1, scratch);
                heap.Offer(new ReadOnlySpan<float>(&score, 1), FirstRow + row);
            }
        }
        return TopKHeap.Merge([heap], kept);
    }

    /// <summary>How many of the rows this store holds are removed, counted once.</summary>
    private long RemovedHeld()
    {
        if (_removedHeld < 0)
        {
            _removedHeld = RemovedMask().LongCount(r => r);
        }
        return _removedHeld;
    }

    /// <summary>Which local rows are removed (<see cref="RemovedRows"/>), computed once.</summary>
    private bool[] RemovedMask()
    {
        if (_removedMask is { } mask)
        {
            return mask;
        }
        mask = new bool[Rows];
        foreach (long row in RemovedRows)
        {
            if (row >= FirstRow && row < FirstRow + Rows)
            {
                mask[row - FirstRow] = true;
            }
        }
        return _removedMask = mask;
    }

    private sealed class BoundState
    {
        private readonly long[] _tileSums;

        public BoundState(int queryCount, int kept)
        {
            _tileSums = GC.AllocateUninitializedArray<long>(Math.Max(1, queryCount * TileRows), pinned: true);
            Queries = Enumerable.Range(0, queryCount).Select(_ => new CandidateBounds(kept)).ToArray();
        }

        public CandidateBounds[] Queries { get; }
        public long* TileSumsPtr => (long*)Unsafe.AsPointer(ref _tileSums[0]);
    }

    /// <summary>What turns a row's integer sum into its interval for one query: the scales, the removed rows, the query's step and bound factor.</summary>
    private readonly record struct RowBound(float[] Scales, bool[]? Removed, double Step, double Factor, int Dim);

    /// <summary>One worker's view of one query: the best lower bounds it saw (a min-heap) and the rows that may still be in the answer.</summary>
    private sealed class CandidateBounds
    {
        private readonly double[] _lowers;
        private readonly List<(long Row, double Upper)> _candidates = [];
        private int _count;
        private int _pruneAt = 1024;

        public CandidateBounds(int kept) => _lowers = new double[kept];

        public IEnumerable<double> Lowers => _lowers.Take(_count);
        public IEnumerable<(long Row, double Upper)> Candidates => _candidates;

        /// <summary>The worker's running L: its k-th best lower bound, −∞ until it has seen k rows.</summary>
        private double Threshold => _count < _lowers.Length ? double.NegativeInfinity : _lowers[0];

        /// <summary>Takes the integer sums of local rows tileStart…; returns by how much the candidates grew (negative: pruned).</summary>
        public int Offer(long* sums, int count, long tileStart, in RowBound bound)
        {
            int before = _candidates.Count;
            for (int i = 0; i < count; i++)
            {
                long row = tileStart + i;
                if (bound.Removed is not null && bound.Removed[row])
                {
                    continue;
                }
                var (lower, upper) = QuantizedRows.ScoreBound(sums[i], bound.Scales[row], bound.Step, bound.Factor, bound.Dim);
                PushLower(lower);
                if (upper >= Threshold)
                {
                    _candidates.Add((row, upper));
                }
            }
            if (_candidates.Count >= _pruneAt)
            {
                double threshold = Threshold;
                _candidates.RemoveAll(c => c.Upper < threshold);
                _pruneAt = Math.Max(1024, 2 * _candidates.Count);
            }
            return _candidates.Count - before;
        }

        private void PushLower(double value)
        {
            if (_count < _lowers.Length)
            {
                int i = _count++;
                for (; i > 0 && _lowers[(i - 1) >> 1] > value; i = (i - 1) >> 1)
                {
                    _lowers[i] = _lowers[(i - 1) >> 1];
                }
                _lowers[i] = value;
                return;
            }
            if (!(value > _lowers[0]))
            {
                return;
            }
            int at = 0;
            while (true)
            {
                int child = (2 * at) + 1;
                if (child >= _count)
                {
                    break;
                }
                if (child + 1 < _count && _lowers[child + 1] < _lowers[child])
                {
                    child++;
                }
                if (_lowers[child] >= value)
                {
                    break;
                }
                _lowers[at] = _lowers[child];
                at = child;
            }
            _lowers[at] = value;
        }
    }
}
