namespace OnnxAttribution.Primitives;

/// <summary>
/// Seeds derived from a run's seed by name and index, so that every random choice of a run has its own stream and
/// no two are related by arithmetic on the run's seed.
/// </summary>
public static class SeedStreams
{
    /// <summary>
    /// The seed of item (<paramref name="index"/>, <paramref name="subIndex"/>) of the stream called <paramref name="name"/>
    /// under run seed <paramref name="seed"/>: elements 2·subIndex and 2·subIndex + 1 (uint32) of the <see cref="CounterRng"/>
    /// keyed by <paramref name="seed"/> on stream (FNV-1a-32 of the name's UTF-16 code units) · 2³² + index, joined into a
    /// non-negative 63-bit number. Adding items (a larger index or sub-index) never changes the seeds already derived.
    /// </summary>
    /// <param name="seed">The run's seed.</param>
    /// <param name="name">The stream's name (e.g. "lds subset model").</param>
    /// <param name="index">First index, 0 … 2³² − 1 (e.g. the subset).</param>
    /// <param name="subIndex">Second index, ≥ 0 (e.g. the training seed of that subset).</param>
    public static long Derive(long seed, string name, long index, long subIndex)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(index, uint.MaxValue);
        ArgumentOutOfRangeException.ThrowIfNegative(subIndex);
        uint hash = 2166136261;
        foreach (char c in name)
        {
            hash = unchecked((hash ^ c) * 16777619);
        }
        Span<uint> words = stackalloc uint[2];
        new CounterRng(seed, unchecked((long)(((ulong)hash << 32) | (ulong)index))).FillUInt32(words, 2 * subIndex);
        return ((long)(words[0] & 0x7FFF_FFFF) << 32) | words[1];
    }
}
