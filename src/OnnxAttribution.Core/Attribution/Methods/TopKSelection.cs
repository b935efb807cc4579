using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>Top-k selection over a dense score vector, with the store's ordering (higher score first, then lower row).</summary>
public static class TopKSelection
{
    /// <summary>The <paramref name="top"/> best entries of <paramref name="scores"/> (entry i is row i); all of them when there are fewer.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="top"/> is negative.</exception>
    public static TopKResult Select(ReadOnlySpan<float> scores, int top)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(top, 0);
        int k = Math.Min(top, scores.Length);
        var heap = new TopKHeap(k);
        if (k > 0)
        {
            heap.Offer(scores, 0);
        }
        return TopKHeap.Merge([heap], k);
    }
}
