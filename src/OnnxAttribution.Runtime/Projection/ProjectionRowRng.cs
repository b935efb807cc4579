using System.Runtime.CompilerServices;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Runtime.Projection;

/// <summary>
/// The random row r of a projection matrix: a counter-based generator keyed by (seed, matrix, row), so entry
/// (r, j) is a pure function of (seed, matrix, r, j): the same on every machine, for any thread count, block
/// size or SIMD width, and computable without generating the entries before it.
/// </summary>
/// <remarks>
/// <para>Layout (version 1; golden values are pinned by tests, never change it silently):</para>
/// <list type="number">
/// <item><description>Row key: (K0, K1) = words 0 and 1 of <see cref="Philox4x32"/> with block = row, stream =
/// <see cref="Domain"/> ⊕ matrix, key = seed. The domain constant keeps projection rows apart from the
/// <see cref="CounterRng"/> streams a caller may draw with the same seed.</description></item>
/// <item><description>Word i of the row: W(i) = M(M(i ⊕ K0) ⊕ K1), M the 32-bit finaliser
/// x ^= x≫16; x *= 0x21F0AAAD; x ^= x≫15; x *= 0x735A2D97; x ^= x≫15 (C. Wellons' "hash prospector" lowbias32,
/// a bijection with near-ideal avalanche). It needs only 32-bit multiplies, which every SIMD width has;
/// Philox's 32×32→64-bit products do not vectorise portably, and a per-entry Philox would cost more than the
/// projection itself.</description></item>
/// <item><description>Rademacher entry (r, j): negative iff bit j mod 32 of W(⌊j/32⌋) is set.</description></item>
/// <item><description>Gaussian entry (r, j): exact Box–Muller on the pair of words a = W(32⌊j/32⌋ + j mod 16),
/// b = W(a's index + 16): u = 2 − 1.m(a≫9) ∈ (0, 1] (23 bits), radius ρ = √(−2 ln u); angle φ = (q + t)·π/2 with
/// quadrant q = b≫30 and t ∈ [−½, ½) from bits 7..29 of b; the entry is ρ cos φ for j mod 32 &lt; 16 and ρ sin φ
/// otherwise. ln, sin and cos are polynomials evaluated with single-rounded float operations only
/// (no fused multiply-add, no library calls), so every path gives the same bits.</description></item>
/// </list>
/// <para>Numerical caveats: the radius uses 23-bit uniforms, so |z| ≤ √(46 ln 2) ≈ 5.65 (the true tail beyond is
/// 1.6·10⁻⁸); ln, sin and cos are accurate to a few float ulps. Within a row, W is a bijection of the word index,
/// so no two words of a row repeat; rows are independent through the Philox keys.</para>
/// </remarks>
public readonly record struct ProjectionRowRng(uint Key0, uint Key1)
{
    /// <summary>Domain separation for projection rows: "JLPR" in the high half of the Philox stream.</summary>
    public const ulong Domain = 0x4A4C_5052_0000_0000UL;

    /// <summary>The generator for row <paramref name="row"/> of matrix <paramref name="matrix"/> under <paramref name="seed"/>.</summary>
    /// <param name="seed">The user's seed.</param>
    /// <param name="matrix">Which matrix: 0 for the dense projector; distinct ids for the factored projector's P_in and P_out of each layer.</param>
    /// <param name="row">The row index (the input coordinate), non-negative.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="row"/> is negative.</exception>
    public static ProjectionRowRng Create(ulong seed, uint matrix, long row)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        return CreateUnchecked(seed, matrix, row);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ProjectionRowRng CreateUnchecked(ulong seed, uint matrix, long row)
    {
        var (x0, x1, _, _) = Philox4x32.Block((ulong)row, Domain ^ matrix, seed);
        return new ProjectionRowRng(x0, x1);
    }

    /// <summary>Word <paramref name="index"/> of the row, W(index).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint Word(uint index) => Mix(Mix(index ^ Key0) ^ Key1);

    /// <summary>Whether Rademacher entry <paramref name="column"/> of the row is negative.</summary>
    public bool IsNegative(int column)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(column);
        return ((Word((uint)column >> 5) >> (column & 31)) & 1) != 0;
    }

    /// <summary>Standard normal entry <paramref name="column"/> of the row (before the 1/√k scale).</summary>
    public float Normal(int column)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(column);
        uint first = ((uint)column & ~31u) | ((uint)column & 15u);
        var (cos, sin) = BoxMuller(Word(first), Word(first + 16));
        return (column & 16) == 0 ? cos : sin;
    }

    /// <summary>Fills <paramref name="destination"/> with words <paramref name="start"/>, <paramref name="start"/>+1, ….</summary>
    public void FillWords(uint start, Span<uint> destination) => ProjectionKernels.FillWords(this, start, destination);

    /// <summary>Fills <paramref name="destination"/> with the float sign bit (0x80000000) of Rademacher entries
    /// <paramref name="columnStart"/>, … (0 where the entry is positive).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="columnStart"/> is negative.</exception>
    public void FillSignMasks(int columnStart, Span<uint> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(columnStart);
        ProjectionKernels.FillSignMasks(this, columnStart, destination);
    }

    /// <summary>Fills <paramref name="destination"/> with standard normal entries <paramref name="columnStart"/>, ….</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="columnStart"/> is negative.</exception>
    public void FillNormals(int columnStart, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(columnStart);
        ProjectionKernels.FillNormals(this, columnStart, destination);
    }

    /// <summary>The 32-bit finaliser M (lowbias32, bias ≈ 0.108).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static uint Mix(uint x)
    {
        x ^= x >> 16;
        x *= 0x21F0AAADu;
        x ^= x >> 15;
        x *= 0x735A2D97u;
        x ^= x >> 15;
        return x;
    }

    /// <summary>Scalar Box–Muller on one word pair, step for step as the vector kernel does it.</summary>
    internal static (float Cos, float Sin) BoxMuller(uint a, uint b)
    {
        float rho = Radius(a);
        var (cos, sin) = SinCosQuarter(Angle(b));
        uint q = b >> 30;
        bool swap = (q & 1) != 0;
        float x = swap ? sin : cos, y = swap ? cos : sin;
        x = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(x) ^ (((q ^ (q >> 1)) & 1) << 31));
        y = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(y) ^ ((q >> 1) << 31));
        return (rho * x, rho * y);
    }

    // Constants shared with the vector kernel (ProjectionKernels.BoxMuller): change both or neither.
    internal const uint One = 0x3F80_0000;          // 1.0f
    internal const float Sqrt2 = 1.41421356f;       // ln's mantissa range is (√2/2, √2]
    internal const float ExponentBias = 8388735f;   // 2²³ + 127: turns the biased exponent, or-ed into 2²³, into a float
    internal const float Ln2Hi = 0.693138123f;      // 0x3F317180: low bits zero, so e·Ln2Hi is exact
    internal const float Ln2Lo = 9.05800061e-06f;   // 0x3717F7D1: ln 2 − Ln2Hi
    internal const float HalfPi = 1.57079637f;
    // ln m = 2s(1 + s²/3 + s⁴/5 + s⁶/7 + s⁸/9), s = (m−1)/(m+1), |s| ≤ 0.172: truncation < 1e-9.
    internal const float L1 = 1f / 3, L2 = 1f / 5, L3 = 1f / 7, L4 = 1f / 9;
    // Taylor series on |θ| ≤ π/4: truncation < 2e-9 (sin), 1.2e-10 (cos).
    internal const float S1 = -1f / 6, S2 = 1f / 120, S3 = -1f / 5040, S4 = 1f / 362880;
    internal const float C1 = -0.5f, C2 = 1f / 24, C3 = -1f / 720, C4 = 1f / 40320, C5 = -1f / 3628800;

    /// <summary>ρ = √(−2 ln u), u = 2 − 1.m(a≫9) ∈ [2⁻²³, 1].</summary>
    private static float Radius(uint a)
    {
        float u = 2f - BitConverter.UInt32BitsToSingle(One | (a >> 9));
        uint bits = BitConverter.SingleToUInt32Bits(u);
        uint exponent = bits >> 23;
        float m = BitConverter.UInt32BitsToSingle((bits & 0x007F_FFFF) | One);
        if (m > Sqrt2)
        {
            m *= 0.5f;
            exponent += 1;
        }
        float e = BitConverter.UInt32BitsToSingle(0x4B00_0000 | exponent) - ExponentBias;
        float f = m - 1f;
        float s = f / (2f + f);
        float s2 = s * s;
        float poly = L1 + s2 * (L2 + s2 * (L3 + s2 * L4));
        float twoS = s + s;
        float lnM = twoS + twoS * (s2 * poly);
        float ln = e * Ln2Hi + (e * Ln2Lo + lnM);
        return MathF.Sqrt(-2f * ln);
    }

    /// <summary>θ = (t − ½)·π/2 with t = 1.m(bits 7..29 of b) − 1, so θ ∈ [−π/4, π/4).</summary>
    private static float Angle(uint b) =>
        (BitConverter.UInt32BitsToSingle(One | ((b >> 7) & 0x007F_FFFF)) - 1.5f) * HalfPi;

    private static (float Cos, float Sin) SinCosQuarter(float theta)
    {
        float t2 = theta * theta;
        float sin = theta + theta * (t2 * (S1 + t2 * (S2 + t2 * (S3 + t2 * S4))));
        float cos = 1f + t2 * (C1 + t2 * (C2 + t2 * (C3 + t2 * (C4 + t2 * C5))));
        return (cos, sin);
    }
}
