namespace OnnxAttribution.Store;

/// <summary>
/// Which rows of the dataset a store holds: shard <c>Index</c> of <c>Count</c> holds the contiguous rows
/// [⌊N·Index/Count⌋, ⌊N·(Index+1)/Count⌋). <see cref="Whole"/> (0 of 1) is an unsharded store.
/// </summary>
public sealed record ShardSpec(int Index, int Count)
{
    /// <summary>The whole dataset: shard 0 of 1.</summary>
    public static ShardSpec Whole { get; } = new(0, 1);

    /// <summary>The first dataset row of this shard.</summary>
    public long FirstRow(long totalRows) => Boundary(totalRows, Index, Count);

    /// <summary>The number of rows of this shard.</summary>
    public long RowCount(long totalRows) => Boundary(totalRows, Index + 1, Count) - Boundary(totalRows, Index, Count);

    private static long Boundary(long n, int i, int count) => (long)((Int128)n * i / count);

    /// <summary>Throws unless 0 ≤ Index &lt; Count.</summary>
    internal void Validate(string where)
    {
        if (Count < 1 || Index < 0 || Index >= Count)
        {
            throw new StoreFormatException($"{where}: field 'shard': expected 0 <= index < count with count >= 1, found index {Index}, count {Count}");
        }
    }
}
