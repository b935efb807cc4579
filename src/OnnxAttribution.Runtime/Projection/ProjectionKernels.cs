using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using OnnxAttribution.Primitives;
using static OnnxAttribution.Runtime.Projection.ProjectionRowRng;

namespace OnnxAttribution.Runtime.Projection;

/// <summary>
/// The hot loops of the projectors: generating rows of P and accumulating y += xᵀ P over a block of rows.
/// Each kernel is written once against <see cref="ISimd{TF,TU}"/> and dispatched 512 → 256 → 128 → scalar on what
/// the hardware accelerates; every path produces the same bits (same operations, same order per element).
/// </summary>
/// <remarks>
/// Callers validate lengths; kernels only <see cref="Debug.Assert(bool)"/>.
/// Measured here (Zen 5, DenseBaselineBenchmarks in tools/OnnxAttribution.Benchmarks): the hand-written accumulate kernel
/// keeps 8 (4 rows × 2 vectors) accumulators in registers across a whole block of rows; the same projection with
/// TensorPrimitives.MultiplyAdd per row of P (y reloaded and stored every row) was 2.3× (Gaussian) to 5× (Rademacher)
/// slower, so the register-tiled kernel earns its keep.
/// </remarks>
internal static unsafe class ProjectionKernels
{
    /// <summary>Columns of every accumulate call are a multiple of this (the widest vector's lane count).</summary>
    public const int ColumnAlignment = 16;

    // ---------------------------------------------------------------- words

    /// <summary>destination[i] = W(start + i).</summary>
    public static void FillWords(ProjectionRowRng rng, uint start, Span<uint> destination)
    {
        fixed (uint* d = destination)
        {
            int i = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                i = FillWords<Simd512, Vector512<float>, Vector512<uint>>(rng, start, d, destination.Length);
            }
            else if (Vector256.IsHardwareAccelerated)
            {
                i = FillWords<Simd256, Vector256<float>, Vector256<uint>>(rng, start, d, destination.Length);
            }
            else if (Vector128.IsHardwareAccelerated)
            {
                i = FillWords<Simd128, Vector128<float>, Vector128<uint>>(rng, start, d, destination.Length);
            }
            // Scalar remainder (and the whole span without SIMD).
            for (; i < destination.Length; i++)
            {
                d[i] = rng.Word(start + (uint)i);
            }
        }
    }

    /// <summary>Whole vectors only; returns how many words were written. Lane l of vector v holds W(start + v·Count + l).</summary>
    private static int FillWords<TS, TF, TU>(ProjectionRowRng rng, uint start, uint* destination, int length)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct
    {
        int i = 0;
        TU index = TS.Add(TS.Indices, TS.Create(start));
        TU step = TS.Create((uint)TS.Count);
        for (; i <= length - TS.Count; i += TS.Count)
        {
            TS.Store(destination + i, Word<TS, TF, TU>(rng, index));
            index = TS.Add(index, step);
        }
        return i;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TU Word<TS, TF, TU>(ProjectionRowRng rng, TU index)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct =>
        Mix<TS, TF, TU>(TS.Xor(Mix<TS, TF, TU>(TS.Xor(index, TS.Create(rng.Key0))), TS.Create(rng.Key1)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TU Mix<TS, TF, TU>(TU x)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct
    {
        x = TS.Xor(x, TS.ShiftRight(x, 16));
        x = TS.Multiply(x, TS.Create(0x21F0AAADu));
        x = TS.Xor(x, TS.ShiftRight(x, 15));
        x = TS.Multiply(x, TS.Create(0x735A2D97u));
        return TS.Xor(x, TS.ShiftRight(x, 15));
    }

    // ---------------------------------------------------------------- Rademacher signs

    /// <summary>destination[i] = 0x80000000 if Rademacher entry columnStart + i is negative, else 0.</summary>
    public static void FillSignMasks(ProjectionRowRng rng, int columnStart, Span<uint> destination)
    {
        Debug.Assert(columnStart >= 0);
        fixed (uint* d = destination)
        {
            int i = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                i = FillSignMasks<Simd512, Vector512<float>, Vector512<uint>>(rng, columnStart, d, destination.Length);
            }
            else if (Vector256.IsHardwareAccelerated)
            {
                i = FillSignMasks<Simd256, Vector256<float>, Vector256<uint>>(rng, columnStart, d, destination.Length);
            }
            else if (Vector128.IsHardwareAccelerated)
            {
                i = FillSignMasks<Simd128, Vector128<float>, Vector128<uint>>(rng, columnStart, d, destination.Length);
            }
            for (; i < destination.Length; i++)
            {
                int column = columnStart + i;
                d[i] = ((rng.Word((uint)column >> 5) >> (column & 31)) & 1) << 31;
            }
        }
    }

    /// <summary>
    /// Scalar head up to a column that is a multiple of Count, then whole vectors. Count divides 32, so one vector's
    /// lanes come from one word: broadcast word ≫ (column mod 32), keep bit l in lane l (LaneBits), turn it into the sign bit.
    /// Returns how many entries were written; the caller finishes the tail.
    /// </summary>
    private static int FillSignMasks<TS, TF, TU>(ProjectionRowRng rng, int columnStart, uint* destination, int length)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct
    {
        int i = 0;
        for (; i < length && ((columnStart + i) & (TS.Count - 1)) != 0; i++)
        {
            int column = columnStart + i;
            destination[i] = ((rng.Word((uint)column >> 5) >> (column & 31)) & 1) << 31;
        }
        TU laneBits = TS.LaneBits;
        TU signBit = TS.Create(0x8000_0000u);
        for (; i <= length - TS.Count; i += TS.Count)
        {
            int column = columnStart + i;
            TU bits = TS.And(TS.Create(rng.Word((uint)column >> 5) >> (column & 31)), laneBits);
            TS.Store(destination + i, TS.And(TS.Equals(bits, laneBits), signBit));
        }
        return i;
    }

    // ---------------------------------------------------------------- Gaussian entries

    /// <summary>destination[i] = standard normal entry columnStart + i (see <see cref="ProjectionRowRng"/> for the layout).</summary>
    public static void FillNormals(ProjectionRowRng rng, int columnStart, Span<float> destination)
    {
        Debug.Assert(columnStart >= 0);
        fixed (float* d = destination)
        {
            int length = destination.Length;
            // Scalar up to the first whole group of 32 columns; vector groups; scalar tail.
            int head = Math.Min(length, (32 - (columnStart & 31)) & 31);
            for (int i = 0; i < head; i++)
            {
                d[i] = rng.Normal(columnStart + i);
            }
            int groups = (length - head) / 32;
            int done = head;
            if (groups > 0)
            {
                if (Vector512.IsHardwareAccelerated)
                {
                    FillNormalGroups<Simd512, Vector512<float>, Vector512<uint>>(rng, columnStart + head, d + head, groups);
                    done += 32 * groups;
                }
                else if (Vector256.IsHardwareAccelerated)
                {
                    FillNormalGroups<Simd256, Vector256<float>, Vector256<uint>>(rng, columnStart + head, d + head, groups);
                    done += 32 * groups;
                }
                else if (Vector128.IsHardwareAccelerated)
                {
                    FillNormalGroups<Simd128, Vector128<float>, Vector128<uint>>(rng, columnStart + head, d + head, groups);
                    done += 32 * groups;
                }
            }
            for (int i = done; i < length; i++)
            {
                d[i] = rng.Normal(columnStart + i);
            }
        }
    }

    /// <summary>
    /// Whole groups of 32 columns from a column that is a multiple of 32. Within a group, lane l of chunk c
    /// (c·Count + l &lt; 16) pairs words 32g + c·Count + l (radius) and that + 16 (angle); its cosine goes to column
    /// c·Count + l of the group and its sine to column 16 + c·Count + l.
    /// </summary>
    private static void FillNormalGroups<TS, TF, TU>(ProjectionRowRng rng, int column, float* destination, int groups)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct
    {
        Debug.Assert((column & 31) == 0);
        TU indices = TS.Indices;
        for (int g = 0; g < groups; g++, column += 32, destination += 32)
        {
            for (int c = 0; c < 16; c += TS.Count)
            {
                TU index = TS.Add(indices, TS.Create((uint)(column + c)));
                TU a = Word<TS, TF, TU>(rng, index);
                TU b = Word<TS, TF, TU>(rng, TS.Add(index, TS.Create(16u)));
                BoxMuller<TS, TF, TU>(a, b, out TF x, out TF y);
                TS.Store(destination + c, x);
                TS.Store(destination + 16 + c, y);
            }
        }
    }

    /// <summary>Lane-wise twin of <see cref="ProjectionRowRng.BoxMuller"/>: same operations in the same order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void BoxMuller<TS, TF, TU>(TU a, TU b, out TF x, out TF y)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct
    {
        TU one = TS.Create(One);

        // Radius: u ∈ [2⁻²³, 1], ln u = e·ln 2 + ln m with m ∈ (√2/2, √2].
        TF u = TS.Subtract(TS.Create(2f), TS.AsSingle(TS.Or(one, TS.ShiftRight(a, 9))));
        TU bits = TS.AsUInt32(u);
        TU exponent = TS.ShiftRight(bits, 23);
        TF m = TS.AsSingle(TS.Or(TS.And(bits, TS.Create(0x007F_FFFFu)), one));
        TU big = TS.GreaterThan(m, TS.Create(Sqrt2));
        m = TS.Select(big, TS.Multiply(m, TS.Create(0.5f)), m);
        exponent = TS.Add(exponent, TS.And(big, TS.Create(1u)));
        TF e = TS.Subtract(TS.AsSingle(TS.Or(exponent, TS.Create(0x4B00_0000u))), TS.Create(ExponentBias));
        TF f = TS.Subtract(m, TS.Create(1f));
        TF s = TS.Divide(f, TS.Add(TS.Create(2f), f));
        TF s2 = TS.Multiply(s, s);
        TF poly = TS.Add(TS.Create(L1), TS.Multiply(s2, TS.Add(TS.Create(L2), TS.Multiply(s2, TS.Add(TS.Create(L3), TS.Multiply(s2, TS.Create(L4)))))));
        TF twoS = TS.Add(s, s);
        TF lnM = TS.Add(twoS, TS.Multiply(twoS, TS.Multiply(s2, poly)));
        TF ln = TS.Add(TS.Multiply(e, TS.Create(Ln2Hi)), TS.Add(TS.Multiply(e, TS.Create(Ln2Lo)), lnM));
        TF rho = TS.Sqrt(TS.Multiply(TS.Create(-2f), ln));

        // Angle: θ ∈ [−π/4, π/4), then rotate by the quadrant q.
        TF theta = TS.Multiply(
            TS.Subtract(TS.AsSingle(TS.Or(one, TS.And(TS.ShiftRight(b, 7), TS.Create(0x007F_FFFFu)))), TS.Create(1.5f)),
            TS.Create(HalfPi));
        TF t2 = TS.Multiply(theta, theta);
        TF sin = TS.Add(theta, TS.Multiply(theta, TS.Multiply(t2,
            TS.Add(TS.Create(S1), TS.Multiply(t2, TS.Add(TS.Create(S2), TS.Multiply(t2, TS.Add(TS.Create(S3), TS.Multiply(t2, TS.Create(S4))))))))));
        TF cos = TS.Add(TS.Create(1f), TS.Multiply(t2,
            TS.Add(TS.Create(C1), TS.Multiply(t2, TS.Add(TS.Create(C2), TS.Multiply(t2, TS.Add(TS.Create(C3),
                TS.Multiply(t2, TS.Add(TS.Create(C4), TS.Multiply(t2, TS.Create(C5)))))))))));
        TU q = TS.ShiftRight(b, 30);
        TU swap = TS.Equals(TS.And(q, TS.Create(1u)), TS.Create(1u));
        TF px = TS.Select(swap, sin, cos);
        TF py = TS.Select(swap, cos, sin);
        px = TS.AsSingle(TS.Xor(TS.AsUInt32(px), TS.ShiftLeft(TS.And(TS.Xor(q, TS.ShiftRight(q, 1)), TS.Create(1u)), 31)));
        py = TS.AsSingle(TS.Xor(TS.AsUInt32(py), TS.ShiftLeft(TS.ShiftRight(q, 1), 31)));
        x = TS.Multiply(rho, px);
        y = TS.Multiply(rho, py);
    }

    // ---------------------------------------------------------------- accumulate y += x P

    /// <summary>
    /// acc[b, j] = op(acc[b, j], x[b, i], p[i, j]) for i = 0 … depth−1 in that order, for b &lt; rows and j &lt; columns:
    /// a row-major product C += X·P where op is a sign flip then add (Rademacher, P holds sign masks) or a fused
    /// multiply-add (Gaussian, or any float P). Each element sees the same operations in the same order on every path,
    /// for any split of the rows into calls, so results are bit-identical whatever the block size or thread count.
    /// </summary>
    /// <remarks>
    /// Layouts (row-major): x is rows × depth with row stride xStride; p is depth × columns with row stride pStride,
    /// columns a multiple of <see cref="ColumnAlignment"/>; acc is rows × columns with row stride accStride, read and written.
    /// </remarks>
    public static void Accumulate<TOp>(float* x, int xStride, int rows, int depth, float* p, int pStride, int columns, float* acc, int accStride)
        where TOp : IAccumulateOp
    {
        Debug.Assert(columns % ColumnAlignment == 0);
        if (Vector512.IsHardwareAccelerated)
        {
            Accumulate<Simd512, Vector512<float>, Vector512<uint>, TOp>(x, xStride, rows, depth, p, pStride, columns, acc, accStride);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            Accumulate<Simd256, Vector256<float>, Vector256<uint>, TOp>(x, xStride, rows, depth, p, pStride, columns, acc, accStride);
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            Accumulate<Simd128, Vector128<float>, Vector128<uint>, TOp>(x, xStride, rows, depth, p, pStride, columns, acc, accStride);
        }
        else
        {
            AccumulateScalar<TOp>(x, xStride, rows, depth, p, pStride, columns, acc, accStride);
        }
    }

    /// <summary>Scalar path: the reference order (i innermost per element).</summary>
    internal static void AccumulateScalar<TOp>(float* x, int xStride, int rows, int depth, float* p, int pStride, int columns, float* acc, int accStride)
        where TOp : IAccumulateOp
    {
        for (int b = 0; b < rows; b++)
        {
            float* xb = x + (nint)b * xStride;
            float* ab = acc + (nint)b * accStride;
            for (int j = 0; j < columns; j++)
            {
                float sum = ab[j];
                for (int i = 0; i < depth; i++)
                {
                    sum = TOp.Apply(sum, xb[i], p[(nint)i * pStride + j]);
                }
                ab[j] = sum;
            }
        }
    }

    /// <summary>
    /// Register tiles: 4 rows of x × 2 vectors of columns (8 accumulators, 2 loads of P and 4 broadcasts of x per
    /// step of i: 14 registers, so the tile fits AVX2's 16 as well as AVX-512's 32; 8 independent chains cover the
    /// fused multiply-add latency at 2 per cycle), then a 4 × 1-vector tile for a last odd vector of columns; rows left
    /// over one at a time with 4 vectors, then 1 vector, of columns. columns is a multiple of 16 and so of Count:
    /// no lane remainder.
    /// </summary>
    private static void Accumulate<TS, TF, TU, TOp>(float* x, int xStride, int rows, int depth, float* p, int pStride, int columns, float* acc, int accStride)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct where TOp : IAccumulateOp
    {
        int w = TS.Count;
        int b = 0;
        for (; b <= rows - 4; b += 4)
        {
            float* x0 = x + (nint)b * xStride, x1 = x0 + xStride, x2 = x1 + xStride, x3 = x2 + xStride;
            float* a0 = acc + (nint)b * accStride, a1 = a0 + accStride, a2 = a1 + accStride, a3 = a2 + accStride;
            int j = 0;
            for (; j <= columns - 2 * w; j += 2 * w)
            {
                TF c00 = TS.Load(a0 + j), c01 = TS.Load(a0 + j + w);
                TF c10 = TS.Load(a1 + j), c11 = TS.Load(a1 + j + w);
                TF c20 = TS.Load(a2 + j), c21 = TS.Load(a2 + j + w);
                TF c30 = TS.Load(a3 + j), c31 = TS.Load(a3 + j + w);
                float* pj = p + j;
                for (int i = 0; i < depth; i++, pj += pStride)
                {
                    TF p0 = TS.Load(pj), p1 = TS.Load(pj + w);
                    TF g = TS.Create(x0[i]);
                    c00 = TOp.Apply<TS, TF, TU>(c00, g, p0);
                    c01 = TOp.Apply<TS, TF, TU>(c01, g, p1);
                    g = TS.Create(x1[i]);
                    c10 = TOp.Apply<TS, TF, TU>(c10, g, p0);
                    c11 = TOp.Apply<TS, TF, TU>(c11, g, p1);
                    g = TS.Create(x2[i]);
                    c20 = TOp.Apply<TS, TF, TU>(c20, g, p0);
                    c21 = TOp.Apply<TS, TF, TU>(c21, g, p1);
                    g = TS.Create(x3[i]);
                    c30 = TOp.Apply<TS, TF, TU>(c30, g, p0);
                    c31 = TOp.Apply<TS, TF, TU>(c31, g, p1);
                }
                TS.Store(a0 + j, c00); TS.Store(a0 + j + w, c01);
                TS.Store(a1 + j, c10); TS.Store(a1 + j + w, c11);
                TS.Store(a2 + j, c20); TS.Store(a2 + j + w, c21);
                TS.Store(a3 + j, c30); TS.Store(a3 + j + w, c31);
            }
            for (; j < columns; j += w)
            {
                TF c0 = TS.Load(a0 + j), c1 = TS.Load(a1 + j), c2 = TS.Load(a2 + j), c3 = TS.Load(a3 + j);
                float* pj = p + j;
                for (int i = 0; i < depth; i++, pj += pStride)
                {
                    TF p0 = TS.Load(pj);
                    c0 = TOp.Apply<TS, TF, TU>(c0, TS.Create(x0[i]), p0);
                    c1 = TOp.Apply<TS, TF, TU>(c1, TS.Create(x1[i]), p0);
                    c2 = TOp.Apply<TS, TF, TU>(c2, TS.Create(x2[i]), p0);
                    c3 = TOp.Apply<TS, TF, TU>(c3, TS.Create(x3[i]), p0);
                }
                TS.Store(a0 + j, c0); TS.Store(a1 + j, c1); TS.Store(a2 + j, c2); TS.Store(a3 + j, c3);
            }
        }
        for (; b < rows; b++)
        {
            float* xb = x + (nint)b * xStride;
            float* ab = acc + (nint)b * accStride;
            int j = 0;
            for (; j <= columns - 4 * w; j += 4 * w)
            {
                TF c0 = TS.Load(ab + j), c1 = TS.Load(ab + j + w), c2 = TS.Load(ab + j + 2 * w), c3 = TS.Load(ab + j + 3 * w);
                float* pj = p + j;
                for (int i = 0; i < depth; i++, pj += pStride)
                {
                    TF g = TS.Create(xb[i]);
                    c0 = TOp.Apply<TS, TF, TU>(c0, g, TS.Load(pj));
                    c1 = TOp.Apply<TS, TF, TU>(c1, g, TS.Load(pj + w));
                    c2 = TOp.Apply<TS, TF, TU>(c2, g, TS.Load(pj + 2 * w));
                    c3 = TOp.Apply<TS, TF, TU>(c3, g, TS.Load(pj + 3 * w));
                }
                TS.Store(ab + j, c0); TS.Store(ab + j + w, c1); TS.Store(ab + j + 2 * w, c2); TS.Store(ab + j + 3 * w, c3);
            }
            for (; j < columns; j += w)
            {
                TF c0 = TS.Load(ab + j);
                float* pj = p + j;
                for (int i = 0; i < depth; i++, pj += pStride)
                {
                    c0 = TOp.Apply<TS, TF, TU>(c0, TS.Create(xb[i]), TS.Load(pj));
                }
                TS.Store(ab + j, c0);
            }
        }
    }
}

/// <summary>How one entry of P meets one entry of x in <see cref="ProjectionKernels.Accumulate{TOp}"/>.</summary>
internal interface IAccumulateOp
{
    static abstract float Apply(float acc, float x, float p);

    static abstract TF Apply<TS, TF, TU>(TF acc, TF x, TF p)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct;
}

/// <summary>acc + (x with its sign flipped where p holds the sign bit): P holds sign masks (0 or 0x80000000), no multiply.</summary>
internal readonly struct SignFlipAdd : IAccumulateOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Apply(float acc, float x, float p) =>
        acc + BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(x) ^ BitConverter.SingleToUInt32Bits(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TF Apply<TS, TF, TU>(TF acc, TF x, TF p)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct =>
        TS.Add(acc, TS.AsSingle(TS.Xor(TS.AsUInt32(x), TS.AsUInt32(p))));
}

/// <summary>acc + x·p rounded once (fused multiply-add): exact on every path, hardware or software.</summary>
internal readonly struct MultiplyAdd : IAccumulateOp
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Apply(float acc, float x, float p) => MathF.FusedMultiplyAdd(x, p, acc);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TF Apply<TS, TF, TU>(TF acc, TF x, TF p)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct =>
        TS.FusedMultiplyAdd(x, p, acc);
}
