using System.Buffers;
using System.Numerics.Tensors;

namespace OnnxAttribution.Runtime.Projection;

/// <summary>
/// The matrix products behind K-FAC: float32 products on the projectors' register-tiled fused multiply-add kernel, and
/// the small float64 products of the inverse-Hessian–vector product. Row-major throughout; callers validate sizes.
/// </summary>
public static unsafe class KroneckerKernels
{
    /// <summary>
    /// destination (rows × columns, row stride columns) = x (rows × depth, row stride xStride) · p (depth × columns, row
    /// stride pStride), float32 with one rounding per fused multiply-add, summed over depth in order.
    /// </summary>
    public static void Multiply(ReadOnlySpan<float> x, int xStride, int rows, int depth, ReadOnlySpan<float> p, int pStride, int columns, Span<float> destination)
    {
        if (rows == 0 || columns == 0)
        {
            return;
        }
        int align = ProjectionKernels.ColumnAlignment;
        int padded = (columns + align - 1) / align * align;
        // The kernel reads whole vectors of columns: p is used in place when the padded width stays inside it (the extra
        // columns read the next row's finite values and are dropped), otherwise copied into a padded buffer.
        bool inPlace = (long)(depth - 1) * pStride + padded <= p.Length;
        float[]? pCopy = inPlace ? null : ArrayPool<float>.Shared.Rent(depth * padded);
        float[] acc = ArrayPool<float>.Shared.Rent(rows * padded);
        try
        {
            if (pCopy is not null)
            {
                for (int i = 0; i < depth; i++)
                {
                    p.Slice(i * pStride, columns).CopyTo(pCopy.AsSpan(i * padded, columns));
                    pCopy.AsSpan(i * padded + columns, padded - columns).Clear();
                }
            }
            acc.AsSpan(0, rows * padded).Clear();
            fixed (float* px = x)
            fixed (float* pp = p)
            fixed (float* pc = pCopy)
            fixed (float* pa = acc)
            {
                if (pCopy is null)
                {
                    ProjectionKernels.Accumulate<MultiplyAdd>(px, xStride, rows, depth, pp, pStride, padded, pa, padded);
                }
                else
                {
                    ProjectionKernels.Accumulate<MultiplyAdd>(px, xStride, rows, depth, pc, padded, padded, pa, padded);
                }
            }
            for (int r = 0; r < rows; r++)
            {
                acc.AsSpan(r * padded, columns).CopyTo(destination.Slice(r * columns, columns));
            }
        }
        finally
        {
            if (pCopy is not null)
            {
                ArrayPool<float>.Shared.Return(pCopy);
            }
            ArrayPool<float>.Shared.Return(acc);
        }
    }

    /// <summary>destination (columns × rows) = sourceᵀ, source rows × columns.</summary>
    public static void Transpose(ReadOnlySpan<float> source, int rows, int columns, Span<float> destination)
    {
        const int block = 32;
        for (int r0 = 0; r0 < rows; r0 += block)
        {
            int r1 = Math.Min(rows, r0 + block);
            for (int c0 = 0; c0 < columns; c0 += block)
            {
                int c1 = Math.Min(columns, c0 + block);
                for (int r = r0; r < r1; r++)
                {
                    for (int c = c0; c < c1; c++)
                    {
                        destination[c * rows + r] = source[r * columns + c];
                    }
                }
            }
        }
    }

    /// <summary>
    /// One example's weight gradient G = Σₛ gₛ aₛᵀ = gᵀa (outDim × inDim) from its factors a (S × inDim) and
    /// g (S × outDim); gᵀ is formed in <paramref name="scratch"/> (at least S·outDim values).
    /// </summary>
    public static void OuterSum(ReadOnlySpan<float> a, ReadOnlySpan<float> g, int positions, int inDim, int outDim, Span<float> scratch, Span<float> destination)
    {
        Transpose(g, positions, outDim, scratch);
        Multiply(scratch, positions, outDim, positions, a, inDim, inDim, destination);
    }

    /// <summary>
    /// Rows [first, last) of the lower triangle of xᵀx (x: S × dim, one example) added to <paramref name="sums"/>
    /// (dim × dim, float64): the product of the block is float32 over the S positions, the sum over examples float64.
    /// </summary>
    public static void AddGramRows(ReadOnlySpan<float> x, int positions, int dim, int first, int last, Span<double> sums)
    {
        int rows = last - first;
        float[] xt = ArrayPool<float>.Shared.Rent(rows * positions);
        float[] block = ArrayPool<float>.Shared.Rent(rows * last);
        try
        {
            for (int s = 0; s < positions; s++)
            {
                var row = x.Slice(s * dim + first, rows);
                for (int r = 0; r < rows; r++)
                {
                    xt[r * positions + s] = row[r];
                }
            }
            // Columns 0 … last−1 cover the block's part of the lower triangle (and a little above it, dropped).
            Multiply(xt, positions, rows, positions, x, dim, last, block);
            for (int r = 0; r < rows; r++)
            {
                int i = first + r;
                var dst = sums.Slice(i * dim, i + 1);
                var src = block.AsSpan(r * last, i + 1);
                for (int c = 0; c <= i; c++)
                {
                    dst[c] += src[c];
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(xt);
            ArrayPool<float>.Shared.Return(block);
        }
    }

    /// <summary>
    /// c (m × n) = op(a) · b or a · op(b) in float64, with op a transpose: <paramref name="transposeA"/> reads a as k × m,
    /// <paramref name="transposeB"/> reads b as n × k (not both). Row updates and dot products of contiguous rows.
    /// </summary>
    public static void Multiply(ReadOnlySpan<double> a, bool transposeA, ReadOnlySpan<double> b, bool transposeB, int m, int k, int n, Span<double> c)
    {
        if (transposeB)
        {
            for (int i = 0; i < m; i++)
            {
                var row = a.Slice(i * k, k);
                for (int j = 0; j < n; j++)
                {
                    c[i * n + j] = TensorPrimitives.Dot(row, b.Slice(j * k, k));
                }
            }
            return;
        }
        c[..(m * n)].Clear();
        for (int i = 0; i < m; i++)
        {
            var dst = c.Slice(i * n, n);
            for (int l = 0; l < k; l++)
            {
                double v = transposeA ? a[l * m + i] : a[i * k + l];
                if (v != 0)
                {
                    TensorPrimitives.MultiplyAdd(b.Slice(l * n, n), v, dst, dst);
                }
            }
        }
    }
}
