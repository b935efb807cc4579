namespace OnnxAttribution.Primitives;

/// <summary>
/// A reproducible random stream keyed by (seed, stream), built on <see cref="Philox4x32"/>: the key is the
/// 64-bit seed, the high half of the counter the 64-bit stream and the low half the block index.
/// Element i of a stream is the same on any machine and for any thread count, and can be computed without
/// generating the elements before it.
/// </summary>
/// <remarks>
/// Layouts (version 1, never changed silently: golden values are pinned by tests):
/// <list type="bullet">
/// <item><description>uint32 element i: word i mod 4 of block i/4.</description></item>
/// <item><description>uniform double element i, in [0, 1): block i gives 53 bits, from words 0 and 1 (27 + 26 bits): u = (x0 &gt;&gt; 5 · 2²⁶ + x1 &gt;&gt; 6) / 2⁵³.</description></item>
/// <item><description>standard normal elements 2j and 2j+1: Box–Muller in float64 on block j, u₁ = 1 − (53 bits of words 0,1)/2⁵³ ∈ (0, 1],
/// u₂ = (53 bits of words 2,3)/2⁵³; z₀ = r cos(2πu₂), z₁ = r sin(2πu₂), r = √(−2 ln u₁); each rounded to float32.</description></item>
/// </list>
/// The uint32, uniform and normal sequences of one (seed, stream) share blocks, so they are not independent of one another:
/// use different streams for different purposes.
/// </remarks>
public readonly record struct CounterRng(long Seed, long Stream)
{
    private const double TwoPow53Inv = 1.0 / (1UL << 53);

    /// <summary>Fills <paramref name="destination"/> with uint32 elements <paramref name="start"/>, <paramref name="start"/>+1, ….</summary>
    public void FillUInt32(Span<uint> destination, long start = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ulong key = unchecked((ulong)Seed), stream = unchecked((ulong)Stream);
        for (int i = 0; i < destination.Length; i++)
        {
            long index = start + i;
            var (x0, x1, x2, x3) = Philox4x32.Block((ulong)(index >> 2), stream, key);
            destination[i] = (index & 3) switch { 0 => x0, 1 => x1, 2 => x2, _ => x3 };
        }
    }

    /// <summary>Fills <paramref name="destination"/> with uniform doubles in [0, 1), elements <paramref name="start"/>, ….</summary>
    public void FillUniform(Span<double> destination, long start = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ulong key = unchecked((ulong)Seed), stream = unchecked((ulong)Stream);
        for (int i = 0; i < destination.Length; i++)
        {
            var (x0, x1, _, _) = Philox4x32.Block((ulong)(start + i), stream, key);
            destination[i] = Bits53(x0, x1) * TwoPow53Inv;
        }
    }

    /// <summary>Fills <paramref name="destination"/> with standard normal draws, elements <paramref name="start"/>, ….</summary>
    /// <remarks>Computed in float64 and rounded to float32; |z| is at most about 8.6 (u₁ ≥ 2⁻⁵³).</remarks>
    public void FillNormal(Span<float> destination, long start = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ulong key = unchecked((ulong)Seed), stream = unchecked((ulong)Stream);
        int i = 0;
        while (i < destination.Length)
        {
            long index = start + i;
            var (z0, z1) = NormalPair(key, stream, (ulong)(index >> 1));
            if ((index & 1) == 0)
            {
                destination[i++] = (float)z0;
                if (i < destination.Length)
                {
                    destination[i++] = (float)z1;
                }
            }
            else
            {
                destination[i++] = (float)z1;
            }
        }
    }

    /// <summary>Standard normal element <paramref name="index"/> of this stream.</summary>
    public float Normal(long index)
    {
        Span<float> one = stackalloc float[1];
        FillNormal(one, index);
        return one[0];
    }

    private static (double Z0, double Z1) NormalPair(ulong key, ulong stream, ulong block)
    {
        var (x0, x1, x2, x3) = Philox4x32.Block(block, stream, key);
        double u1 = 1.0 - Bits53(x0, x1) * TwoPow53Inv; // (0, 1]: the log is finite
        double u2 = Bits53(x2, x3) * TwoPow53Inv;
        double r = Math.Sqrt(-2.0 * Math.Log(u1));
        var (s, c) = Math.SinCos(2.0 * Math.PI * u2);
        return (r * c, r * s);
    }

    private static ulong Bits53(uint a, uint b) => ((ulong)(a >> 5) << 26) | (b >> 6);
}
