using System.Runtime.CompilerServices;

namespace OnnxAttribution.Primitives;

/// <summary>
/// The Philox4x32-10 counter-based bijection (Salmon, Moraes, Dror &amp; Shaw, "Parallel random numbers:
/// as easy as 1, 2, 3", SC 2011): 10 rounds mapping a 128-bit counter and a 64-bit key to 128 random bits.
/// </summary>
/// <remarks>
/// Being a pure function of (counter, key), any element of a stream can be computed on its own, so the
/// numbers do not depend on the machine, the thread count or the order in which blocks are generated.
/// Checked against the Random123 known-answer vectors.
/// </remarks>
public static class Philox4x32
{
    private const uint M0 = 0xD2511F53;
    private const uint M1 = 0xCD9E8D57;
    private const uint W0 = 0x9E3779B9; // golden ratio
    private const uint W1 = 0xBB67AE85; // sqrt(3) - 1

    /// <summary>Computes one 128-bit block.</summary>
    /// <param name="c0">Counter word 0 (least significant).</param>
    /// <param name="c1">Counter word 1.</param>
    /// <param name="c2">Counter word 2.</param>
    /// <param name="c3">Counter word 3.</param>
    /// <param name="k0">Key word 0.</param>
    /// <param name="k1">Key word 1.</param>
    /// <returns>The four output words, in Random123's order.</returns>
    public static (uint X0, uint X1, uint X2, uint X3) Block(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1)
    {
        for (int round = 0; round < 10; round++)
        {
            if (round > 0)
            {
                k0 += W0;
                k1 += W1;
            }
            ulong p0 = (ulong)M0 * c0;
            ulong p1 = (ulong)M1 * c2;
            uint hi0 = (uint)(p0 >> 32), lo0 = (uint)p0;
            uint hi1 = (uint)(p1 >> 32), lo1 = (uint)p1;
            (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
        }
        return (c0, c1, c2, c3);
    }

    /// <summary>Computes one block for a 64-bit block index, a 64-bit stream and a 64-bit key.</summary>
    /// <remarks>Counter words 0–1 hold <paramref name="block"/>, words 2–3 hold <paramref name="stream"/>, both little-endian.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (uint X0, uint X1, uint X2, uint X3) Block(ulong block, ulong stream, ulong key) =>
        Block((uint)block, (uint)(block >> 32), (uint)stream, (uint)(stream >> 32), (uint)key, (uint)(key >> 32));
}
