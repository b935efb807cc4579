using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Store;

/// <summary>Which vector width a kernel runs at; <see cref="Auto"/> picks the widest the hardware accelerates.</summary>
internal enum SimdWidth
{
    Auto,
    Scalar,
    W128,
    W256,
    W512,
}

/// <summary>How a kernel reads the elements of a store row: float32 as is, or float16 widened to float32 as loaded.</summary>
internal unsafe interface IRowElements
{
    /// <summary>Bytes per element.</summary>
    static abstract int Size { get; }

    /// <summary>Elements [column, column + TS.Count) of <paramref name="row"/> as floats.</summary>
    static abstract TF Load<TS, TF, TU>(void* row, int column)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct;

    /// <summary>Element <paramref name="column"/> of <paramref name="row"/> as a float.</summary>
    static abstract float Scalar(void* row, int column);
}

internal unsafe struct SingleRows : IRowElements
{
    public static int Size => sizeof(float);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TF Load<TS, TF, TU>(void* row, int column)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct => TS.Load((float*)row + column);

    public static float Scalar(void* row, int column) => ((float*)row)[column];
}

internal unsafe struct HalfRows : IRowElements
{
    public static int Size => sizeof(ushort);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TF Load<TS, TF, TU>(void* row, int column)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct => TS.LoadHalf((ushort*)row + column);

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
                ScoreTile<Simd512, Vector512<float>, Vector512<uint>>(rows, dtype, rowCount, dim, queries, queryCount, scores, scoreStride, scratch);
                break;
            case SimdWidth.W256:
                ScoreTile<Simd256, Vector256<float>, Vector256<uint>>(rows, dtype, rowCount, dim, queries, queryCount, scores, scoreStride, scratch);
                break;
            case SimdWidth.W128:
                ScoreTile<Simd128, Vector128<float>, Vector128<uint>>(rows, dtype, rowCount, dim, queries, queryCount, scores, scoreStride, scratch);
                break;
            default:
                ScoreTile<SimdScalar, float, uint>(rows, dtype, rowCount, dim, queries, queryCount, scores, scoreStride, scratch);
                break;
        }
    }

    /// <summary>Converts <paramref name="count"/> binary16 values to float32 at the given width.</summary>
    public static void HalfToSingle(SimdWidth width, ushort* source, float* destination, long count)
    {
        switch (Resolve(width))
        {
            case SimdWidth.W512:
                HalfToSingle<Simd512, Vector512<float>, Vector512<uint>>(source, destination, count);
                break;
            case SimdWidth.W256:
                HalfToSingle<Simd256, Vector256<float>, Vector256<uint>>(source, destination, count);
                break;
            case SimdWidth.W128:
                HalfToSingle<Simd128, Vector128<float>, Vector128<uint>>(source, destination, count);
                break;
            default:
                HalfToSingle<SimdScalar, float, uint>(source, destination, count);
                break;
        }
    }

    private static void HalfToSingle<TS, TF, TU>(ushort* source, float* destination, long count)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct
    {
        long i = 0;
        for (; i <= count - TS.Count; i += TS.Count)
        {
            TS.Store(destination + i, TS.LoadHalf(source + i));
        }
        for (; i < count; i++)
        {
            destination[i] = HalfBits.ToSingle(source[i]);
        }
    }

    private static void ScoreTile<TS, TF, TU>(byte* rows, StoreDType dtype, int rowCount, int dim,
        float* queries, int queryCount, float* scores, long scoreStride, float* scratch)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct
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
                        Dot4x1<TS, TF, TU, HalfRows>(hp, dim, queries + ((long)q * dim) + c0, len, scores + r0 + (q * scoreStride), first);
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
                        HalfToSingle<TS, TF, TU>((ushort*)rows + ((long)(r0 + i) * dim) + c0, scratch + (i * ChunkColumns), len);
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
                        Dot4x4<TS, TF, TU>(rp, rs, queries + ((long)q * dim) + c0, dim, len, sp + (q * scoreStride), scoreStride, first);
                    }
                    for (; q < queryCount; q++)
                    {
                        Dot4x1<TS, TF, TU, SingleRows>(rp, rs, queries + ((long)q * dim) + c0, len, sp + (q * scoreStride), first);
                    }
                }
                else
                {
                    for (int i = 0; i < nr; i++)
                    {
                        int q = 0;
                        for (; q <= queryCount - 4; q += 4)
                        {
                            Dot1x4<TS, TF, TU>(rp + (i * rs), queries + ((long)q * dim) + c0, dim, len, sp + i + (q * scoreStride), scoreStride, first);
                        }
                        for (; q < queryCount; q++)
                        {
                            Dot1x1<TS, TF, TU>(rp + (i * rs), queries + ((long)q * dim) + c0, len, sp + i + (q * scoreStride), first);
                        }
                    }
                }
            }
        }
    }

    /// <summary>Lane sum plus the chunk's remainder columns [n, len), then stored or added: the one way a pair's chunk is finished.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish<TS, TF, TU, TRow>(TF acc, void* row, float* query, int n, int len, float* destination, bool first)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct where TRow : struct, IRowElements
    {
        float partial = TS.Sum(acc);
        for (int c = n; c < len; c++)
        {
            partial = float.MultiplyAddEstimate(TRow.Scalar(row, c), query[c], partial);
        }
        *destination = first ? partial : *destination + partial;
    }

    // 4 rows (r + i·rs) × 4 queries (q + j·qs): 16 accumulators, 8 loads per 16 FMAs. Score of (i, j) at s[j·ss + i].
    private static void Dot4x4<TS, TF, TU>(float* r, long rs, float* q, long qs, int len, float* s, long ss, bool first)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct
    {
        float* r0 = r, r1 = r + rs, r2 = r + (2 * rs), r3 = r + (3 * rs);
        float* q0 = q, q1 = q + qs, q2 = q + (2 * qs), q3 = q + (3 * qs);
        TF a00 = TS.Zero, a01 = TS.Zero, a02 = TS.Zero, a03 = TS.Zero;
        TF a10 = TS.Zero, a11 = TS.Zero, a12 = TS.Zero, a13 = TS.Zero;
        TF a20 = TS.Zero, a21 = TS.Zero, a22 = TS.Zero, a23 = TS.Zero;
        TF a30 = TS.Zero, a31 = TS.Zero, a32 = TS.Zero, a33 = TS.Zero;
        int n = len - (len % TS.Count);
        for (int c = 0; c < n; c += TS.Count)
        {
            TF x0 = TS.Load(r0 + c), x1 = TS.Load(r1 + c), x2 = TS.Load(r2 + c), x3 = TS.Load(r3 + c);
            TF y = TS.Load(q0 + c);
            a00 = TS.MultiplyAddEstimate(x0, y, a00); a10 = TS.MultiplyAddEstimate(x1, y, a10); a20 = TS.MultiplyAddEstimate(x2, y, a20); a30 = TS.MultiplyAddEstimate(x3, y, a30);
            y = TS.Load(q1 + c);
            a01 = TS.MultiplyAddEstimate(x0, y, a01); a11 = TS.MultiplyAddEstimate(x1, y, a11); a21 = TS.MultiplyAddEstimate(x2, y, a21); a31 = TS.MultiplyAddEstimate(x3, y, a31);
            y = TS.Load(q2 + c);
            a02 = TS.MultiplyAddEstimate(x0, y, a02); a12 = TS.MultiplyAddEstimate(x1, y, a12); a22 = TS.MultiplyAddEstimate(x2, y, a22); a32 = TS.MultiplyAddEstimate(x3, y, a32);
            y = TS.Load(q3 + c);
            a03 = TS.MultiplyAddEstimate(x0, y, a03); a13 = TS.MultiplyAddEstimate(x1, y, a13); a23 = TS.MultiplyAddEstimate(x2, y, a23); a33 = TS.MultiplyAddEstimate(x3, y, a33);
        }
        Finish<TS, TF, TU, SingleRows>(a00, r0, q0, n, len, s, first);
        Finish<TS, TF, TU, SingleRows>(a10, r1, q0, n, len, s + 1, first);
        Finish<TS, TF, TU, SingleRows>(a20, r2, q0, n, len, s + 2, first);
        Finish<TS, TF, TU, SingleRows>(a30, r3, q0, n, len, s + 3, first);
        Finish<TS, TF, TU, SingleRows>(a01, r0, q1, n, len, s + ss, first);
        Finish<TS, TF, TU, SingleRows>(a11, r1, q1, n, len, s + ss + 1, first);
        Finish<TS, TF, TU, SingleRows>(a21, r2, q1, n, len, s + ss + 2, first);
        Finish<TS, TF, TU, SingleRows>(a31, r3, q1, n, len, s + ss + 3, first);
        Finish<TS, TF, TU, SingleRows>(a02, r0, q2, n, len, s + (2 * ss), first);
        Finish<TS, TF, TU, SingleRows>(a12, r1, q2, n, len, s + (2 * ss) + 1, first);
        Finish<TS, TF, TU, SingleRows>(a22, r2, q2, n, len, s + (2 * ss) + 2, first);
        Finish<TS, TF, TU, SingleRows>(a32, r3, q2, n, len, s + (2 * ss) + 3, first);
        Finish<TS, TF, TU, SingleRows>(a03, r0, q3, n, len, s + (3 * ss), first);
        Finish<TS, TF, TU, SingleRows>(a13, r1, q3, n, len, s + (3 * ss) + 1, first);
        Finish<TS, TF, TU, SingleRows>(a23, r2, q3, n, len, s + (3 * ss) + 2, first);
        Finish<TS, TF, TU, SingleRows>(a33, r3, q3, n, len, s + (3 * ss) + 3, first);
    }

    // 4 rows × 1 query: 4 independent FMA chains (the single-query scan). Rows are float32, or float16 widened as loaded;
    // rs counts elements.
    private static void Dot4x1<TS, TF, TU, TRow>(void* r, long rs, float* q, int len, float* s, bool first)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct where TRow : struct, IRowElements
    {
        byte* r0 = (byte*)r, r1 = r0 + (rs * TRow.Size), r2 = r1 + (rs * TRow.Size), r3 = r2 + (rs * TRow.Size);
        TF a0 = TS.Zero, a1 = TS.Zero, a2 = TS.Zero, a3 = TS.Zero;
        int n = len - (len % TS.Count);
        for (int c = 0; c < n; c += TS.Count)
        {
            TF y = TS.Load(q + c);
            a0 = TS.MultiplyAddEstimate(TRow.Load<TS, TF, TU>(r0, c), y, a0);
            a1 = TS.MultiplyAddEstimate(TRow.Load<TS, TF, TU>(r1, c), y, a1);
            a2 = TS.MultiplyAddEstimate(TRow.Load<TS, TF, TU>(r2, c), y, a2);
            a3 = TS.MultiplyAddEstimate(TRow.Load<TS, TF, TU>(r3, c), y, a3);
        }
        Finish<TS, TF, TU, TRow>(a0, r0, q, n, len, s, first);
        Finish<TS, TF, TU, TRow>(a1, r1, q, n, len, s + 1, first);
        Finish<TS, TF, TU, TRow>(a2, r2, q, n, len, s + 2, first);
        Finish<TS, TF, TU, TRow>(a3, r3, q, n, len, s + 3, first);
    }

    // 1 row × 4 queries (the last rows of a tile).
    private static void Dot1x4<TS, TF, TU>(float* r, float* q, long qs, int len, float* s, long ss, bool first)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct
    {
        float* q0 = q, q1 = q + qs, q2 = q + (2 * qs), q3 = q + (3 * qs);
        TF a0 = TS.Zero, a1 = TS.Zero, a2 = TS.Zero, a3 = TS.Zero;
        int n = len - (len % TS.Count);
        for (int c = 0; c < n; c += TS.Count)
        {
            TF x = TS.Load(r + c);
            a0 = TS.MultiplyAddEstimate(x, TS.Load(q0 + c), a0);
            a1 = TS.MultiplyAddEstimate(x, TS.Load(q1 + c), a1);
            a2 = TS.MultiplyAddEstimate(x, TS.Load(q2 + c), a2);
            a3 = TS.MultiplyAddEstimate(x, TS.Load(q3 + c), a3);
        }
        Finish<TS, TF, TU, SingleRows>(a0, r, q0, n, len, s, first);
        Finish<TS, TF, TU, SingleRows>(a1, r, q1, n, len, s + ss, first);
        Finish<TS, TF, TU, SingleRows>(a2, r, q2, n, len, s + (2 * ss), first);
        Finish<TS, TF, TU, SingleRows>(a3, r, q3, n, len, s + (3 * ss), first);
    }

    private static void Dot1x1<TS, TF, TU>(float* r, float* q, int len, float* s, bool first)
        where TS : ISimd<TF, TU> where TF : struct where TU : struct
    {
        TF a = TS.Zero;
        int n = len - (len % TS.Count);
        for (int c = 0; c < n; c += TS.Count)
        {
            a = TS.MultiplyAddEstimate(TS.Load(r + c), TS.Load(q + c), a);
        }
        Finish<TS, TF, TU, SingleRows>(a, r, q, n, len, s, first);
    }
}
