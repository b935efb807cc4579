using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace OnnxAttribution.Core.Store;

/// <summary>Which vector width a kernel runs at; <see cref="Auto"/> picks the widest the hardware accelerates.</summary>
internal enum SimdWidth
{
    Auto,
    Scalar,
    W128,
    W256,
    W512,
}

/// <summary>
/// The operations the scan kernels need at one vector width. Kernels are generic over a struct implementing this, so the JIT
/// emits one specialised copy per width (the pattern TensorPrimitives uses internally); no call is virtual at run time.
/// </summary>
internal unsafe interface IVectorOps<TVec> where TVec : struct
{
    /// <summary>Float lanes per vector.</summary>
    static abstract int Count { get; }
    static abstract bool IsAccelerated { get; }
    static abstract TVec Zero { get; }
    static abstract TVec Load(float* p);
    /// <summary>a·b + c, fused where the hardware has FMA.</summary>
    static abstract TVec MultiplyAdd(TVec a, TVec b, TVec c);
    /// <summary>Sum of the lanes, in a fixed order.</summary>
    static abstract float Sum(TVec v);
    static abstract void Store(TVec v, float* p);
    /// <summary>Loads <see cref="Count"/> binary16 values at <paramref name="source"/> as floats.</summary>
    static abstract TVec LoadHalf(ushort* source);
}

/// <summary>
/// The binary16 → binary32 conversion used by the scan, branch-free and exact for every bit pattern (the method of
/// F. Giesen's <c>half_to_float_fast5</c>):
/// sign-extend the 16 bits to 32, shift left by 13 and keep bit 31 (sign) and bits 27..13 (exponent and mantissa): this is a
/// float whose value is the half's times 2⁻¹¹², exactly, for normals and subnormals alike (a half subnormal becomes a float
/// subnormal). Multiplying by 2¹¹² rebiases the exponent exactly. Inf and NaN (half exponent 31) would come out as finite
/// numbers ≥ 65536, so their exponent field is set to all ones before the multiply: Inf stays Inf, and a NaN keeps its sign and
/// payload and is quieted by the multiply, as <c>(float)(Half)</c> and the F16C instruction do.
/// </summary>
/// <remarks>Requires float subnormals to be honoured (no DAZ/FTZ), which is .NET's default.</remarks>
internal static class HalfBits
{
    public const int KeepMask = unchecked((int)0x8FFFE000);
    public const int HalfExponentMask = 0x0F800000; // the half's 5 exponent bits after the shift
    public const int SingleExponentMask = 0x7F800000;
    public static readonly float Rebias = BitConverter.Int32BitsToSingle(0x77800000); // 2^112

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle(ushort h)
    {
        int x = ((short)h << 13) & KeepMask;
        if ((x & HalfExponentMask) == HalfExponentMask)
        {
            x |= SingleExponentMask;
        }
        return BitConverter.Int32BitsToSingle(x) * Rebias;
    }
}

internal unsafe struct ScalarOps : IVectorOps<float>
{
    public static int Count => 1;
    public static bool IsAccelerated => true;
    public static float Zero => 0f;
    public static float Load(float* p) => *p;
    public static float MultiplyAdd(float a, float b, float c) => float.MultiplyAddEstimate(a, b, c);
    public static float Sum(float v) => v;
    public static void Store(float v, float* p) => *p = v;
    public static float LoadHalf(ushort* source) => HalfBits.ToSingle(*source);
}

// The vector conversions below do per lane what HalfBits.ToSingle does. Lane layout: lane i of the float vector is half i
// of the loaded block (WidenLower of a sign-extending widen keeps order); callers handle the remainder with the scalar form.

internal unsafe struct Vector128Ops : IVectorOps<Vector128<float>>
{
    public static int Count => Vector128<float>.Count;
    public static bool IsAccelerated => Vector128.IsHardwareAccelerated;
    public static Vector128<float> Zero => Vector128<float>.Zero;
    public static Vector128<float> Load(float* p) => Vector128.Load(p);
    public static Vector128<float> MultiplyAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.MultiplyAddEstimate(a, b, c);
    public static float Sum(Vector128<float> v) => Vector128.Sum(v);

    public static void Store(Vector128<float> v, float* p) => v.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> LoadHalf(ushort* source)
    {
        Vector128<int> w = Vector128.WidenLower(Vector64.Load((short*)source).ToVector128Unsafe());
        Vector128<int> x = (w << 13) & Vector128.Create(HalfBits.KeepMask);
        Vector128<int> special = Vector128.Equals(x & Vector128.Create(HalfBits.HalfExponentMask), Vector128.Create(HalfBits.HalfExponentMask));
        x |= special & Vector128.Create(HalfBits.SingleExponentMask);
        return x.AsSingle() * Vector128.Create(HalfBits.Rebias);
    }
}

internal unsafe struct Vector256Ops : IVectorOps<Vector256<float>>
{
    public static int Count => Vector256<float>.Count;
    public static bool IsAccelerated => Vector256.IsHardwareAccelerated;
    public static Vector256<float> Zero => Vector256<float>.Zero;
    public static Vector256<float> Load(float* p) => Vector256.Load(p);
    public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.MultiplyAddEstimate(a, b, c);
    public static float Sum(Vector256<float> v) => Vector256.Sum(v);

    public static void Store(Vector256<float> v, float* p) => v.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> LoadHalf(ushort* source)
    {
        Vector256<int> w = Vector256.WidenLower(Vector128.Load((short*)source).ToVector256Unsafe());
        Vector256<int> x = (w << 13) & Vector256.Create(HalfBits.KeepMask);
        Vector256<int> special = Vector256.Equals(x & Vector256.Create(HalfBits.HalfExponentMask), Vector256.Create(HalfBits.HalfExponentMask));
        x |= special & Vector256.Create(HalfBits.SingleExponentMask);
        return x.AsSingle() * Vector256.Create(HalfBits.Rebias);
    }
}

internal unsafe struct Vector512Ops : IVectorOps<Vector512<float>>
{
    public static int Count => Vector512<float>.Count;
    public static bool IsAccelerated => Vector512.IsHardwareAccelerated;
    public static Vector512<float> Zero => Vector512<float>.Zero;
    public static Vector512<float> Load(float* p) => Vector512.Load(p);
    public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.MultiplyAddEstimate(a, b, c);
    public static float Sum(Vector512<float> v) => Vector512.Sum(v);

    public static void Store(Vector512<float> v, float* p) => v.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadHalf(ushort* source)
    {
        Vector512<int> w = Vector512.WidenLower(Vector256.Load((short*)source).ToVector512Unsafe());
        Vector512<int> x = (w << 13) & Vector512.Create(HalfBits.KeepMask);
        Vector512<int> special = Vector512.Equals(x & Vector512.Create(HalfBits.HalfExponentMask), Vector512.Create(HalfBits.HalfExponentMask));
        x |= special & Vector512.Create(HalfBits.SingleExponentMask);
        return x.AsSingle() * Vector512.Create(HalfBits.Rebias);
    }
}

/// <summary>How a kernel reads the elements of a store row: float32 as is, or float16 widened to float32 as loaded.</summary>
internal unsafe interface IRowElements
{
    /// <summary>Bytes per element.</summary>
    static abstract int Size { get; }

    /// <summary>Elements [column, column + TOps.Count) of <paramref name="row"/> as floats.</summary>
    static abstract TVec Load<TOps, TVec>(void* row, int column) where TOps : struct, IVectorOps<TVec> where TVec : struct;

    /// <summary>Element <paramref name="column"/> of <paramref name="row"/> as a float.</summary>
    static abstract float Scalar(void* row, int column);
}

internal unsafe struct SingleRows : IRowElements
{
    public static int Size => sizeof(float);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TVec Load<TOps, TVec>(void* row, int column) where TOps : struct, IVectorOps<TVec> where TVec : struct => TOps.Load((float*)row + column);

    public static float Scalar(void* row, int column) => ((float*)row)[column];
}

internal unsafe struct HalfRows : IRowElements
{
    public static int Size => sizeof(ushort);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TVec Load<TOps, TVec>(void* row, int column) where TOps : struct, IVectorOps<TVec> where TVec : struct => TOps.LoadHalf((ushort*)row + column);

    public static float Scalar(void* row, int column) => HalfBits.ToSingle(((ushort*)row)[column]);
}

/// <summary>
/// Dot products of store rows with query vectors: scores[q, r] = Σⱼ row_r[j]·query_q[j], float32 accumulation.
/// </summary>
/// <remarks>
/// Every (row, query) pair is summed the same way whatever kernel, tile, batch or thread computes it: the columns are cut into
/// chunks of <see cref="ChunkColumns"/>; in a chunk one vector accumulator takes the full vectors in column order, its lanes are
/// summed (fixed order), the chunk's remainder columns are added one by one, and the chunk sums are added in order. So a query's
/// scores do not depend on the other queries in its batch nor on the thread count. They do depend on the vector width
/// (different lane counts sum in a different order).
///
/// Blocking: a chunk of 4 rows (at most 16 KiB float32) stays in L1 while all queries' chunks (in L2) stream past it, 4 queries at
/// a time, so the 4×4 kernel does 16 FMAs per 8 loads and a row is read from memory once for the whole batch. float16 rows are
/// converted chunk-wise into a float scratch first, so the conversion is paid once per row, not once per query; for fewer than
/// <see cref="FusedHalfQueries"/> queries they are widened in registers instead, saving the scratch round trip.
/// </remarks>
internal static unsafe class ScanKernels
{
    /// <summary>Columns per chunk: a multiple of every vector width.</summary>
    public const int ChunkColumns = 1024;

    /// <summary>Rows per block kernel.</summary>
    public const int BlockRows = 4;

    /// <summary>Below this many queries, float16 rows are widened in registers per query instead of once into scratch.</summary>
    public const int FusedHalfQueries = 4;

    /// <summary>Floats of scratch <see cref="ScoreTile"/> needs.</summary>
    public const int ScratchFloats = BlockRows * ChunkColumns;

    public static SimdWidth Resolve(SimdWidth width) => width != SimdWidth.Auto ? width
        : Vector512.IsHardwareAccelerated ? SimdWidth.W512
        : Vector256.IsHardwareAccelerated ? SimdWidth.W256
        : Vector128.IsHardwareAccelerated ? SimdWidth.W128
        : SimdWidth.Scalar;

    /// <summary>
    /// scores[q·scoreStride + r] = ⟨row r, query q⟩ for r &lt; rowCount, q &lt; queryCount. Rows are contiguous, <paramref name="dim"/>
    /// elements each, float32 or float16 bits; queries are contiguous float32. <paramref name="scratch"/> holds <see cref="ScratchFloats"/>.
    /// </summary>
    public static void ScoreTile(SimdWidth width, byte* rows, StoreDType dtype, int rowCount, int dim,
        float* queries, int queryCount, float* scores, long scoreStride, float* scratch)
    {
        switch (Resolve(width))
        {
            case SimdWidth.W512:
                ScoreTile<Vector512Ops, Vector512<float>>(rows, dtype, rowCount, dim, queries, queryCount, scores, scoreStride, scratch);
                break;
            case SimdWidth.W256:
                ScoreTile<Vector256Ops, Vector256<float>>(rows, dtype, rowCount, dim, queries, queryCount, scores, scoreStride, scratch);
                break;
            case SimdWidth.W128:
                ScoreTile<Vector128Ops, Vector128<float>>(rows, dtype, rowCount, dim, queries, queryCount, scores, scoreStride, scratch);
                break;
            default:
                ScoreTile<ScalarOps, float>(rows, dtype, rowCount, dim, queries, queryCount, scores, scoreStride, scratch);
                break;
        }
    }

    /// <summary>Converts <paramref name="count"/> binary16 values to float32 at the given width.</summary>
    public static void HalfToSingle(SimdWidth width, ushort* source, float* destination, long count)
    {
        switch (Resolve(width))
        {
            case SimdWidth.W512:
                HalfToSingle<Vector512Ops, Vector512<float>>(source, destination, count);
                break;
            case SimdWidth.W256:
                HalfToSingle<Vector256Ops, Vector256<float>>(source, destination, count);
                break;
            case SimdWidth.W128:
                HalfToSingle<Vector128Ops, Vector128<float>>(source, destination, count);
                break;
            default:
                HalfToSingle<ScalarOps, float>(source, destination, count);
                break;
        }
    }

    private static void HalfToSingle<TOps, TVec>(ushort* source, float* destination, long count)
        where TOps : struct, IVectorOps<TVec> where TVec : struct
    {
        long i = 0;
        for (; i <= count - TOps.Count; i += TOps.Count)
        {
            TOps.Store(TOps.LoadHalf(source + i), destination + i);
        }
        for (; i < count; i++)
        {
            destination[i] = HalfBits.ToSingle(source[i]);
        }
    }

    private static void ScoreTile<TOps, TVec>(byte* rows, StoreDType dtype, int rowCount, int dim,
        float* queries, int queryCount, float* scores, long scoreStride, float* scratch)
        where TOps : struct, IVectorOps<TVec> where TVec : struct
    {
        Debug.Assert(dim > 0 && rowCount >= 0 && queryCount >= 0);
        for (int c0 = 0; c0 < dim; c0 += ChunkColumns)
        {
            int len = Math.Min(ChunkColumns, dim - c0);
            bool first = c0 == 0;
            for (int r0 = 0; r0 < rowCount; r0 += BlockRows)
            {
                int nr = Math.Min(BlockRows, rowCount - r0);
                if (dtype == StoreDType.Float16 && nr == BlockRows && queryCount < FusedHalfQueries)
                {
                    // Few queries: widen in registers as the rows stream past (same floats, same FMA order as via scratch).
                    ushort* hp = (ushort*)rows + ((long)r0 * dim) + c0;
                    for (int q = 0; q < queryCount; q++)
                    {
                        Dot4x1<TOps, TVec, HalfRows>(hp, dim, queries + ((long)q * dim) + c0, len, scores + r0 + (q * scoreStride), first);
                    }
                    continue;
                }
                float* rp;
                long rs;
                if (dtype == StoreDType.Float32)
                {
                    rp = (float*)rows + ((long)r0 * dim) + c0;
                    rs = dim;
                }
                else
                {
                    for (int i = 0; i < nr; i++)
                    {
                        HalfToSingle<TOps, TVec>((ushort*)rows + ((long)(r0 + i) * dim) + c0, scratch + (i * ChunkColumns), len);
                    }
                    rp = scratch;
                    rs = ChunkColumns;
                }
                float* sp = scores + r0;
                if (nr == BlockRows)
                {
                    int q = 0;
                    for (; q <= queryCount - 4; q += 4)
                    {
                        Dot4x4<TOps, TVec>(rp, rs, queries + ((long)q * dim) + c0, dim, len, sp + (q * scoreStride), scoreStride, first);
                    }
                    for (; q < queryCount; q++)
                    {
                        Dot4x1<TOps, TVec, SingleRows>(rp, rs, queries + ((long)q * dim) + c0, len, sp + (q * scoreStride), first);
                    }
                }
                else
                {
                    for (int i = 0; i < nr; i++)
                    {
                        int q = 0;
                        for (; q <= queryCount - 4; q += 4)
                        {
                            Dot1x4<TOps, TVec>(rp + (i * rs), queries + ((long)q * dim) + c0, dim, len, sp + i + (q * scoreStride), scoreStride, first);
                        }
                        for (; q < queryCount; q++)
                        {
                            Dot1x1<TOps, TVec>(rp + (i * rs), queries + ((long)q * dim) + c0, len, sp + i + (q * scoreStride), first);
                        }
                    }
                }
            }
        }
    }

    /// <summary>Lane sum plus the chunk's remainder columns [n, len), then stored or added: the one way a pair's chunk is finished.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish<TOps, TVec, TRow>(TVec acc, void* row, float* query, int n, int len, float* destination, bool first)
        where TOps : struct, IVectorOps<TVec> where TVec : struct where TRow : struct, IRowElements
    {
        float partial = TOps.Sum(acc);
        for (int c = n; c < len; c++)
        {
            partial = float.MultiplyAddEstimate(TRow.Scalar(row, c), query[c], partial);
        }
        *destination = first ? partial : *destination + partial;
    }

    // 4 rows (r + i·rs) × 4 queries (q + j·qs): 16 accumulators, 8 loads per 16 FMAs. Score of (i, j) at s[j·ss + i].
    private static void Dot4x4<TOps, TVec>(float* r, long rs, float* q, long qs, int len, float* s, long ss, bool first)
        where TOps : struct, IVectorOps<TVec> where TVec : struct
    {
        float* r0 = r, r1 = r + rs, r2 = r + (2 * rs), r3 = r + (3 * rs);
        float* q0 = q, q1 = q + qs, q2 = q + (2 * qs), q3 = q + (3 * qs);
        TVec a00 = TOps.Zero, a01 = TOps.Zero, a02 = TOps.Zero, a03 = TOps.Zero;
        TVec a10 = TOps.Zero, a11 = TOps.Zero, a12 = TOps.Zero, a13 = TOps.Zero;
        TVec a20 = TOps.Zero, a21 = TOps.Zero, a22 = TOps.Zero, a23 = TOps.Zero;
        TVec a30 = TOps.Zero, a31 = TOps.Zero, a32 = TOps.Zero, a33 = TOps.Zero;
        int n = len - (len % TOps.Count);
        for (int c = 0; c < n; c += TOps.Count)
        {
            TVec x0 = TOps.Load(r0 + c), x1 = TOps.Load(r1 + c), x2 = TOps.Load(r2 + c), x3 = TOps.Load(r3 + c);
            TVec y = TOps.Load(q0 + c);
            a00 = TOps.MultiplyAdd(x0, y, a00); a10 = TOps.MultiplyAdd(x1, y, a10); a20 = TOps.MultiplyAdd(x2, y, a20); a30 = TOps.MultiplyAdd(x3, y, a30);
            y = TOps.Load(q1 + c);
            a01 = TOps.MultiplyAdd(x0, y, a01); a11 = TOps.MultiplyAdd(x1, y, a11); a21 = TOps.MultiplyAdd(x2, y, a21); a31 = TOps.MultiplyAdd(x3, y, a31);
            y = TOps.Load(q2 + c);
            a02 = TOps.MultiplyAdd(x0, y, a02); a12 = TOps.MultiplyAdd(x1, y, a12); a22 = TOps.MultiplyAdd(x2, y, a22); a32 = TOps.MultiplyAdd(x3, y, a32);
            y = TOps.Load(q3 + c);
            a03 = TOps.MultiplyAdd(x0, y, a03); a13 = TOps.MultiplyAdd(x1, y, a13); a23 = TOps.MultiplyAdd(x2, y, a23); a33 = TOps.MultiplyAdd(x3, y, a33);
        }
        Finish<TOps, TVec, SingleRows>(a00, r0, q0, n, len, s, first);
        Finish<TOps, TVec, SingleRows>(a10, r1, q0, n, len, s + 1, first);
        Finish<TOps, TVec, SingleRows>(a20, r2, q0, n, len, s + 2, first);
        Finish<TOps, TVec, SingleRows>(a30, r3, q0, n, len, s + 3, first);
        Finish<TOps, TVec, SingleRows>(a01, r0, q1, n, len, s + ss, first);
        Finish<TOps, TVec, SingleRows>(a11, r1, q1, n, len, s + ss + 1, first);
        Finish<TOps, TVec, SingleRows>(a21, r2, q1, n, len, s + ss + 2, first);
        Finish<TOps, TVec, SingleRows>(a31, r3, q1, n, len, s + ss + 3, first);
        Finish<TOps, TVec, SingleRows>(a02, r0, q2, n, len, s + (2 * ss), first);
        Finish<TOps, TVec, SingleRows>(a12, r1, q2, n, len, s + (2 * ss) + 1, first);
        Finish<TOps, TVec, SingleRows>(a22, r2, q2, n, len, s + (2 * ss) + 2, first);
        Finish<TOps, TVec, SingleRows>(a32, r3, q2, n, len, s + (2 * ss) + 3, first);
        Finish<TOps, TVec, SingleRows>(a03, r0, q3, n, len, s + (3 * ss), first);
        Finish<TOps, TVec, SingleRows>(a13, r1, q3, n, len, s + (3 * ss) + 1, first);
        Finish<TOps, TVec, SingleRows>(a23, r2, q3, n, len, s + (3 * ss) + 2, first);
        Finish<TOps, TVec, SingleRows>(a33, r3, q3, n, len, s + (3 * ss) + 3, first);
    }

    // 4 rows × 1 query: 4 independent FMA chains (the single-query scan). Rows are float32, or float16 widened as loaded;
    // rs counts elements.
    private static void Dot4x1<TOps, TVec, TRow>(void* r, long rs, float* q, int len, float* s, bool first)
        where TOps : struct, IVectorOps<TVec> where TVec : struct where TRow : struct, IRowElements
    {
        byte* r0 = (byte*)r, r1 = r0 + (rs * TRow.Size), r2 = r1 + (rs * TRow.Size), r3 = r2 + (rs * TRow.Size);
        TVec a0 = TOps.Zero, a1 = TOps.Zero, a2 = TOps.Zero, a3 = TOps.Zero;
        int n = len - (len % TOps.Count);
        for (int c = 0; c < n; c += TOps.Count)
        {
            TVec y = TOps.Load(q + c);
            a0 = TOps.MultiplyAdd(TRow.Load<TOps, TVec>(r0, c), y, a0);
            a1 = TOps.MultiplyAdd(TRow.Load<TOps, TVec>(r1, c), y, a1);
            a2 = TOps.MultiplyAdd(TRow.Load<TOps, TVec>(r2, c), y, a2);
            a3 = TOps.MultiplyAdd(TRow.Load<TOps, TVec>(r3, c), y, a3);
        }
        Finish<TOps, TVec, TRow>(a0, r0, q, n, len, s, first);
        Finish<TOps, TVec, TRow>(a1, r1, q, n, len, s + 1, first);
        Finish<TOps, TVec, TRow>(a2, r2, q, n, len, s + 2, first);
        Finish<TOps, TVec, TRow>(a3, r3, q, n, len, s + 3, first);
    }

    // 1 row × 4 queries (the last rows of a tile).
    private static void Dot1x4<TOps, TVec>(float* r, float* q, long qs, int len, float* s, long ss, bool first)
        where TOps : struct, IVectorOps<TVec> where TVec : struct
    {
        float* q0 = q, q1 = q + qs, q2 = q + (2 * qs), q3 = q + (3 * qs);
        TVec a0 = TOps.Zero, a1 = TOps.Zero, a2 = TOps.Zero, a3 = TOps.Zero;
        int n = len - (len % TOps.Count);
        for (int c = 0; c < n; c += TOps.Count)
        {
            TVec x = TOps.Load(r + c);
            a0 = TOps.MultiplyAdd(x, TOps.Load(q0 + c), a0);
            a1 = TOps.MultiplyAdd(x, TOps.Load(q1 + c), a1);
            a2 = TOps.MultiplyAdd(x, TOps.Load(q2 + c), a2);
            a3 = TOps.MultiplyAdd(x, TOps.Load(q3 + c), a3);
        }
        Finish<TOps, TVec, SingleRows>(a0, r, q0, n, len, s, first);
        Finish<TOps, TVec, SingleRows>(a1, r, q1, n, len, s + ss, first);
        Finish<TOps, TVec, SingleRows>(a2, r, q2, n, len, s + (2 * ss), first);
        Finish<TOps, TVec, SingleRows>(a3, r, q3, n, len, s + (3 * ss), first);
    }

    private static void Dot1x1<TOps, TVec>(float* r, float* q, int len, float* s, bool first)
        where TOps : struct, IVectorOps<TVec> where TVec : struct
    {
        TVec a = TOps.Zero;
        int n = len - (len % TOps.Count);
        for (int c = 0; c < n; c += TOps.Count)
        {
            a = TOps.MultiplyAdd(TOps.Load(r + c), TOps.Load(q + c), a);
        }
        Finish<TOps, TVec, SingleRows>(a, r, q, n, len, s, first);
    }
}
