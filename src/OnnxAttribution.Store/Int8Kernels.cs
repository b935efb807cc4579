using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace OnnxAttribution.Store;

/// <summary>
/// Integer dot products of the 8-bit copy's rows (int8) with queries quantised to int16: sums[q, r] = Σⱼ rowᵣ[j]·queryq[j],
/// exact. Each int8 is widened to int16 (vpmovsxbw), pairs of products are summed into int32 lanes (vpmaddwd) and the lanes
/// added (vpaddd): three instructions per row and vector of columns, where the float kernel needs two conversions and an FMA
/// per half as many columns, so the scan of the copy stays at the speed of memory on two cores.
/// </summary>
/// <remarks>
/// Exact at every width, so the widths agree bit for bit by construction: |row| ≤ 127 and |query| ≤ 32767, so a pair of
/// products is below 2²³ and a 32-bit lane of one chunk (<see cref="ChunkColumns"/> columns, at most 128 pairs a lane at
/// 128 bits) stays below 2³¹; chunks are added in 64 bits. Lane layout: lane i of a widened vector is column c + i; the
/// columns after the last full vector of a chunk are added one by one.
/// </remarks>
internal static unsafe class Int8Kernels
{
    /// <summary>Columns summed in 32-bit lanes before they are added into the 64-bit total.</summary>
    public const int ChunkColumns = 1024;

    /// <summary>The largest quantised query value (int16 without −32768, so a product pair never overflows).</summary>
    public const int QueryLevels = 32767;

    /// <summary>The width the kernels run at for <paramref name="width"/>: the widest the hardware has at or below it.</summary>
    public static SimdWidth Resolve(SimdWidth width)
    {
        var want = ScanKernels.Resolve(width);
        return want >= SimdWidth.W512 && Vector512.IsHardwareAccelerated && Avx512BW.IsSupported ? SimdWidth.W512
            : want >= SimdWidth.W256 && Avx2.IsSupported ? SimdWidth.W256
            : want >= SimdWidth.W128 && Sse41.IsSupported ? SimdWidth.W128
            : SimdWidth.Scalar;
    }

    /// <summary>
    /// Quantises a query: <paramref name="destination"/>[j] = round(query[j] / t) with t = max|query| / <see cref="QueryLevels"/>,
    /// so |query[j] − t·destination[j]| ≤ t/2. Returns t (0 for a zero query; NaN or ∞ when the query is not finite).
    /// </summary>
    public static double QuantizeQuery(ReadOnlySpan<float> query, Span<short> destination)
    {
        double max = 0;
        foreach (float v in query)
        {
            max = Math.Max(max, Math.Abs((double)v));
        }
        double step = max / QueryLevels;
        if (!double.IsFinite(step) || step == 0)
        {
            destination[..query.Length].Clear();
            return step;
        }
        for (int j = 0; j < query.Length; j++)
        {
            destination[j] = (short)Math.Clamp(Math.Round(query[j] / step, MidpointRounding.ToEven), -QueryLevels, QueryLevels);
        }
        return step;
    }

    /// <summary>
    /// sums[q·stride + r] = Σⱼ rows[r·dim + j]·queries[q·dim + j] for r &lt; rowCount, q &lt; queryCount: exact, any width.
    /// </summary>
    public static void DotTile(SimdWidth width, sbyte* rows, int rowCount, int dim, short* queries, int queryCount, long* sums, long stride)
    {
        switch (Resolve(width))
        {
            case SimdWidth.W512:
                DotTile<Dot512, Vector512<short>, Vector512<int>>(rows, rowCount, dim, queries, queryCount, sums, stride);
                break;
            case SimdWidth.W256:
                DotTile<Dot256, Vector256<short>, Vector256<int>>(rows, rowCount, dim, queries, queryCount, sums, stride);
                break;
            case SimdWidth.W128:
                DotTile<Dot128, Vector128<short>, Vector128<int>>(rows, rowCount, dim, queries, queryCount, sums, stride);
                break;
            default:
                for (int q = 0; q < queryCount; q++)
                {
                    for (int r = 0; r < rowCount; r++)
                    {
                        sums[(q * stride) + r] = Tail(rows + ((long)r * dim), queries + ((long)q * dim), 0, dim);
                    }
                }
                break;
        }
    }

    private static void DotTile<TD, TS, TI>(sbyte* rows, int rowCount, int dim, short* queries, int queryCount, long* sums, long stride)
        where TD : IShortDot<TS, TI> where TS : struct where TI : struct
    {
        Debug.Assert(dim > 0 && rowCount >= 0 && queryCount >= 0);
        int r0 = 0;
        for (; r0 + 4 <= rowCount; r0 += 4)
        {
            sbyte* r = rows + ((long)r0 * dim);
            for (int q = 0; q < queryCount; q++)
            {
                Dot4<TD, TS, TI>(r, dim, queries + ((long)q * dim), sums + (q * stride) + r0);
            }
        }
        for (; r0 < rowCount; r0++)
        {
            for (int q = 0; q < queryCount; q++)
            {
                sums[(q * stride) + r0] = Dot1<TD, TS, TI>(rows + ((long)r0 * dim), queries + ((long)q * dim), dim);
            }
        }
    }

    // 4 rows (r + i·dim) × 1 query: four int32 accumulators per chunk, one query load per four row loads.
    private static void Dot4<TD, TS, TI>(sbyte* r, int dim, short* q, long* s)
        where TD : IShortDot<TS, TI> where TS : struct where TI : struct
    {
        sbyte* r1 = r + dim, r2 = r1 + dim, r3 = r2 + dim;
        long s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (int c0 = 0; c0 < dim; c0 += ChunkColumns)
        {
            int end = Math.Min(dim, c0 + ChunkColumns);
            int n = c0 + ((end - c0) / TD.Count * TD.Count);
            TI a0 = TD.Zero, a1 = TD.Zero, a2 = TD.Zero, a3 = TD.Zero;
            for (int c = c0; c < n; c += TD.Count)
            {
                TS y = TD.LoadQuery(q + c);
                a0 = TD.MultiplyAddAdjacent(TD.WidenRow(r + c), y, a0);
                a1 = TD.MultiplyAddAdjacent(TD.WidenRow(r1 + c), y, a1);
                a2 = TD.MultiplyAddAdjacent(TD.WidenRow(r2 + c), y, a2);
                a3 = TD.MultiplyAddAdjacent(TD.WidenRow(r3 + c), y, a3);
            }
            s0 += TD.Sum(a0) + Tail(r, q, n, end);
            s1 += TD.Sum(a1) + Tail(r1, q, n, end);
            s2 += TD.Sum(a2) + Tail(r2, q, n, end);
            s3 += TD.Sum(a3) + Tail(r3, q, n, end);
        }
        (s[0], s[1], s[2], s[3]) = (s0, s1, s2, s3);
    }

    private static long Dot1<TD, TS, TI>(sbyte* r, short* q, int dim)
        where TD : IShortDot<TS, TI> where TS : struct where TI : struct
    {
        long total = 0;
        for (int c0 = 0; c0 < dim; c0 += ChunkColumns)
        {
            int end = Math.Min(dim, c0 + ChunkColumns);
            int n = c0 + ((end - c0) / TD.Count * TD.Count);
            TI a = TD.Zero;
            for (int c = c0; c < n; c += TD.Count)
            {
                a = TD.MultiplyAddAdjacent(TD.WidenRow(r + c), TD.LoadQuery(q + c), a);
            }
            total += TD.Sum(a) + Tail(r, q, n, end);
        }
        return total;
    }

    /// <summary>Σ row[c]·query[c] over [from, to), one by one (the scalar width and every remainder).</summary>
    private static long Tail(sbyte* r, short* q, int from, int to)
    {
        long sum = 0;
        for (int c = from; c < to; c++)
        {
            sum += r[c] * q[c];
        }
        return sum;
    }
}

/// <summary>One vector width of <see cref="Int8Kernels"/>: int8 widened to int16, pairwise multiply-add into int32 lanes.</summary>
internal unsafe interface IShortDot<TS, TI>
    where TS : struct
    where TI : struct
{
    /// <summary>int16 lanes per vector (columns per step).</summary>
    static abstract int Count { get; }

    /// <summary>The zero accumulator.</summary>
    static abstract TI Zero { get; }

    /// <summary>Count int8 values widened to int16, in order.</summary>
    static abstract TS WidenRow(sbyte* source);

    /// <summary>Count int16 query values.</summary>
    static abstract TS LoadQuery(short* source);

    /// <summary>acc + (a₂ᵢ·b₂ᵢ + a₂ᵢ₊₁·b₂ᵢ₊₁) per int32 lane i.</summary>
    static abstract TI MultiplyAddAdjacent(TS a, TS b, TI acc);

    /// <summary>The lanes' sum, in 64 bits.</summary>
    static abstract long Sum(TI acc);
}

internal readonly unsafe struct Dot512 : IShortDot<Vector512<short>, Vector512<int>>
{
    public static int Count => Vector512<short>.Count;
    public static Vector512<int> Zero => Vector512<int>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<short> WidenRow(sbyte* source) => Avx512BW.ConvertToVector512Int16(Vector256.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<short> LoadQuery(short* source) => Vector512.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> MultiplyAddAdjacent(Vector512<short> a, Vector512<short> b, Vector512<int> acc) => acc + Avx512BW.MultiplyAddAdjacent(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static long Sum(Vector512<int> acc) => Vector512.Sum(Vector512.WidenLower(acc) + Vector512.WidenUpper(acc));
}

internal readonly unsafe struct Dot256 : IShortDot<Vector256<short>, Vector256<int>>
{
    public static int Count => Vector256<short>.Count;
    public static Vector256<int> Zero => Vector256<int>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<short> WidenRow(sbyte* source) => Avx2.ConvertToVector256Int16(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<short> LoadQuery(short* source) => Vector256.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> MultiplyAddAdjacent(Vector256<short> a, Vector256<short> b, Vector256<int> acc) => acc + Avx2.MultiplyAddAdjacent(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static long Sum(Vector256<int> acc) => Vector256.Sum(Vector256.WidenLower(acc) + Vector256.WidenUpper(acc));
}

internal readonly unsafe struct Dot128 : IShortDot<Vector128<short>, Vector128<int>>
{
    public static int Count => Vector128<short>.Count;
    public static Vector128<int> Zero => Vector128<int>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<short> WidenRow(sbyte* source) => Sse41.ConvertToVector128Int16(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<short> LoadQuery(short* source) => Vector128.Load(source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> MultiplyAddAdjacent(Vector128<short> a, Vector128<short> b, Vector128<int> acc) => acc + Sse2.MultiplyAddAdjacent(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static long Sum(Vector128<int> acc) => Vector128.Sum(Vector128.WidenLower(acc) + Vector128.WidenUpper(acc));
}
