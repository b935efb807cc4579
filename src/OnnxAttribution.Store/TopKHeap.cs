namespace OnnxAttribution.Store;

/// <summary>
/// A bounded min-heap of (score, row) keeping the k best seen. The order is total, so the result does not depend on the order
/// rows are offered in: higher score first, then lower row index; NaN ranks below every number.
/// </summary>
public sealed class TopKHeap
{
    private readonly float[] _scores;
    private readonly long[] _rows;
    private int _count;

    /// <summary>An empty heap that keeps at most <paramref name="capacity"/> rows.</summary>
    public TopKHeap(int capacity)
    {
        _scores = new float[capacity];
        _rows = new long[capacity];
    }

    /// <summary>The rows kept so far.</summary>
    public int Count => _count;

    /// <summary>True when (sa, ra) ranks above (sb, rb).</summary>
    public static bool Better(float sa, long ra, float sb, long rb)
    {
        bool na = float.IsNaN(sa), nb = float.IsNaN(sb);
        if (na | nb)
        {
            return na != nb ? nb : ra < rb;
        }
        return sa > sb || (sa == sb && ra < rb);
    }

    /// <summary>Offers the scores of consecutive rows firstRow, firstRow+1, ….</summary>
    public void Offer(ReadOnlySpan<float> scores, long firstRow)
    {
        int capacity = _scores.Length;
        if (capacity == 0)
        {
            return;
        }
        int i = 0;
        for (; i < scores.Length && _count < capacity; i++)
        {
            Push(scores[i], firstRow + i);
        }
        // Full: only rows that beat the root (the worst kept) get in. Most scores are below it, so the plain < comparison
        // decides the hot path; equal scores and NaNs go through the full order.
        float worst = _scores[0];
        long worstRow = _rows[0];
        for (; i < scores.Length; i++)
        {
            float s = scores[i];
            if (s < worst)
            {
                continue;
            }
            if (s > worst || Better(s, firstRow + i, worst, worstRow))
            {
                ReplaceRoot(s, firstRow + i);
                worst = _scores[0];
                worstRow = _rows[0];
            }
        }
    }

    private void Push(float score, long row)
    {
        int i = _count++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (!Better(_scores[parent], _rows[parent], score, row))
            {
                break;
            }
            _scores[i] = _scores[parent];
            _rows[i] = _rows[parent];
            i = parent;
        }
        _scores[i] = score;
        _rows[i] = row;
    }

    private void ReplaceRoot(float score, long row)
    {
        int i = 0;
        while (true)
        {
            int child = (2 * i) + 1;
            if (child >= _count)
            {
                break;
            }
            if (child + 1 < _count && Better(_scores[child], _rows[child], _scores[child + 1], _rows[child + 1]))
            {
                child++;
            }
            if (!Better(score, row, _scores[child], _rows[child]))
            {
                break;
            }
            _scores[i] = _scores[child];
            _rows[i] = _rows[child];
            i = child;
        }
        _scores[i] = score;
        _rows[i] = row;
    }

    /// <summary>The best <paramref name="k"/> of the union of <paramref name="heaps"/>, best first.</summary>
    public static TopKResult Merge(IEnumerable<TopKHeap> heaps, int k)
    {
        var all = new List<(float Score, long Row)>();
        foreach (var h in heaps)
        {
            for (int i = 0; i < h._count; i++)
            {
                all.Add((h._scores[i], h._rows[i]));
            }
        }
        all.Sort((a, b) => Better(a.Score, a.Row, b.Score, b.Row) ? -1 : Better(b.Score, b.Row, a.Score, a.Row) ? 1 : 0);
        int n = Math.Min(k, all.Count);
        var rows = new long[n];
        var scores = new float[n];
        for (int i = 0; i < n; i++)
        {
            rows[i] = all[i].Row;
            scores[i] = all[i].Score;
        }
        return new TopKResult(rows, scores);
    }
}
