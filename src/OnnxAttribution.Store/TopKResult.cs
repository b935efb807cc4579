namespace OnnxAttribution.Store;

/// <summary>The best rows for one query, best first.</summary>
/// <param name="Indices">Dataset row indices, in descending order of score (ties: lower index first).</param>
/// <param name="Scores">The scores of those rows.</param>
public sealed record TopKResult(long[] Indices, float[] Scores)
{
    /// <summary>Number of results (k, or fewer when the store has fewer rows).</summary>
    public int Count => Indices.Length;
}
