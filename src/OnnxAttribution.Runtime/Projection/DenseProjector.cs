using System.Buffers;
using System.Numerics.Tensors;

namespace OnnxAttribution.Runtime.Projection;

/// <summary>
/// A Johnson–Lindenstrauss projection y = Pᵀg of a flattened gradient g ∈ ℝᵖ to ℝᵏ, with P ∈ ℝ^{p×k} generated on the
/// fly in blocks of rows from <see cref="ProjectionRowRng"/> (matrix id 0): nothing p×k is ever stored, and the same
/// seed gives the same P on every machine.
/// </summary>
/// <remarks>
/// <para>Entries are ±1/√k (<see cref="ProjectionKind.Rademacher"/>) or N(0, 1/k) (<see cref="ProjectionKind.Gaussian"/>),
/// so E‖y‖² = ‖g‖² and inner products are preserved to about ‖x‖‖y‖·√(2/k) (one standard deviation).</para>
/// <para>Numerics: y[j] is accumulated in float32 over the rows in increasing order, starting from 0 (or from the destination
/// for the accumulate methods), with the 1/√k scale applied to g first: y[j] = Σᵣ (s·g[r]) ⊙ z[r, j], ⊙ a sign flip
/// (Rademacher) or a fused multiply-add (Gaussian). The result is therefore bit-identical whatever the batch size,
/// <see cref="RowBlockSize"/>, <see cref="ColumnBlockSize"/>, thread count or SIMD width, and projecting a gradient in
/// consecutive pieces with <see cref="ProjectAccumulate(ReadOnlySpan{float}, long, Span{float})"/> gives exactly the bits of
/// one <see cref="Project"/>. The float32 sum has a relative error of order p·2⁻²⁴ in the worst case (√p·2⁻²⁴ typically),
/// far below the projection's own √(2/k).</para>
/// <para>Speed comes from batches: <see cref="ProjectBatch"/> generates each block of P once for all rows of the batch and
/// splits the k output columns between threads. The instance is immutable and its methods are thread-safe.</para>
/// </remarks>
public sealed class DenseProjector
{
    /// <summary>Rows of P are indexed below 2⁴⁸; gradients are far shorter.</summary>
    public const long MaxInputDim = 1L << 48;

    /// <summary>Threads get whole tiles of this many columns.</summary>
    private const int PartAlignment = 64;

    private int _rowBlockSize = 128;
    private int _columnBlockSize = 256;
    private int _maxDegreeOfParallelism = -1;

    /// <summary>Creates a projector from ℝ^<paramref name="inputDim"/> to ℝ^<paramref name="outputDim"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A dimension is not positive, or <paramref name="inputDim"/> exceeds <see cref="MaxInputDim"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="kind"/> is not defined.</exception>
    public DenseProjector(long inputDim, int outputDim, ProjectionKind kind, ulong seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inputDim);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(inputDim, MaxInputDim);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outputDim);
        if (!Enum.IsDefined(kind))
        {
            throw new ArgumentException($"Unknown projection kind {kind}.", nameof(kind));
        }
        InputDim = inputDim;
        OutputDim = outputDim;
        Kind = kind;
        Seed = seed;
        Scale = (float)(1.0 / Math.Sqrt(outputDim));
    }

    /// <summary>p: the length of one gradient.</summary>
    public long InputDim { get; }

    /// <summary>k: the length of one projected gradient.</summary>
    public int OutputDim { get; }

    /// <summary>The distribution of P's entries.</summary>
    public ProjectionKind Kind { get; }

    /// <summary>The seed P is generated from (<see cref="ProjectionRowRng"/>, matrix id 0).</summary>
    public ulong Seed { get; }

    /// <summary>s = 1/√k, the scale of every entry.</summary>
    public float Scale { get; }

    /// <summary>Rows of P generated per block (default 128). Changes speed only, never the result.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not positive.</exception>
    public int RowBlockSize
    {
        get => _rowBlockSize;
        init
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value);
            _rowBlockSize = value;
        }
    }

    /// <summary>Columns of P generated per block (default 256; a multiple of 16). Changes speed only, never the result.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not a positive multiple of 16.</exception>
    public int ColumnBlockSize
    {
        get => _columnBlockSize;
        init
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(value);
            if (value % ProjectionKernels.ColumnAlignment != 0)
            {
                throw new ArgumentOutOfRangeException(nameof(value), value, $"Expected a multiple of {ProjectionKernels.ColumnAlignment}.");
            }
            _columnBlockSize = value;
        }
    }

    /// <summary>Threads used by one call; −1 (default) for all cores. Changes speed only, never the result.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Zero or below −1.</exception>
    public int MaxDegreeOfParallelism
    {
        get => _maxDegreeOfParallelism;
        init
        {
            if (value == 0 || value < -1)
            {
                throw new ArgumentOutOfRangeException(nameof(value), value, "Expected −1 or a positive thread count.");
            }
            _maxDegreeOfParallelism = value;
        }
    }

    /// <summary>y = Pᵀg.</summary>
    /// <param name="gradient">p values.</param>
    /// <param name="destination">k values, overwritten.</param>
    /// <exception cref="ArgumentException">A length differs from p or k.</exception>
    public void Project(ReadOnlySpan<float> gradient, Span<float> destination) => ProjectBatch(gradient, 1, destination);

    /// <summary>Projects <paramref name="count"/> gradients at once, generating each block of P once for all of them.</summary>
    /// <param name="gradients">count rows of p values, row-major.</param>
    /// <param name="count">The number of gradients, B.</param>
    /// <param name="destinations">count rows of k values, overwritten.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is negative.</exception>
    /// <exception cref="ArgumentException">A length differs from count·p or count·k.</exception>
    public void ProjectBatch(ReadOnlySpan<float> gradients, int count, Span<float> destinations)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        CheckLength(gradients.Length, count * InputDim, nameof(gradients));
        CheckLength(destinations.Length, (long)count * OutputDim, nameof(destinations));
        Run(gradients, count, count == 0 ? 0 : checked((int)InputDim), 0, destinations, accumulate: false);
    }

    /// <summary>
    /// destination += P[rowOffset .. rowOffset + n)ᵀ · slice: the contribution of rows rowOffset … rowOffset+n−1 of g, for
    /// gradients that arrive in pieces (one tensor at a time). Starting from zeros and adding the pieces in order gives the
    /// same bits as <see cref="Project"/> of the whole.
    /// </summary>
    /// <param name="gradientSlice">n values: g[rowOffset .. rowOffset + n).</param>
    /// <param name="rowOffset">Where the slice starts in g.</param>
    /// <param name="destination">k values, read and written.</param>
    /// <exception cref="ArgumentOutOfRangeException">The slice does not lie within [0, p).</exception>
    /// <exception cref="ArgumentException"><paramref name="destination"/> does not hold k values.</exception>
    public void ProjectAccumulate(ReadOnlySpan<float> gradientSlice, long rowOffset, Span<float> destination) =>
        ProjectAccumulateBatch(gradientSlice, 1, rowOffset, destination);

    /// <summary>The batched form of <see cref="ProjectAccumulate(ReadOnlySpan{float}, long, Span{float})"/>.</summary>
    /// <param name="gradientSlices">count rows of n values each (the same rows of g for every example).</param>
    /// <param name="count">The number of gradients, B (≥ 1 when the slices are not empty).</param>
    /// <param name="rowOffset">Where each slice starts in its gradient.</param>
    /// <param name="destinations">count rows of k values, read and written.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> or the offset is negative, or the slice runs past p.</exception>
    /// <exception cref="ArgumentException">The lengths do not match count.</exception>
    public void ProjectAccumulateBatch(ReadOnlySpan<float> gradientSlices, int count, long rowOffset, Span<float> destinations)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegative(rowOffset);
        CheckLength(destinations.Length, (long)count * OutputDim, nameof(destinations));
        if (count == 0)
        {
            CheckLength(gradientSlices.Length, 0, nameof(gradientSlices));
            return;
        }
        if (gradientSlices.Length % count != 0)
        {
            throw new ArgumentException($"Expected {count} slices of equal length, found {gradientSlices.Length} values.", nameof(gradientSlices));
        }
        int length = gradientSlices.Length / count;
        if (rowOffset + length > InputDim)
        {
            throw new ArgumentOutOfRangeException(nameof(rowOffset), rowOffset, $"Rows {rowOffset}…{rowOffset + length - 1} run past the input dimension {InputDim}.");
        }
        Run(gradientSlices, count, length, rowOffset, destinations, accumulate: true);
    }

    /// <summary>Row <paramref name="row"/> of P: destination[j] = P[row, j] (±s, or s·z). For inspection and tests; slow.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="row"/> is outside [0, p).</exception>
    /// <exception cref="ArgumentException"><paramref name="destination"/> does not hold k values.</exception>
    public void FillRow(long row, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, InputDim);
        CheckLength(destination.Length, OutputDim, nameof(destination));
        FillRow(ProjectionRowRng.CreateUnchecked(Seed, 0, row), Kind, Scale, destination);
    }

    /// <summary>Entries of one row, scaled: ±<paramref name="scale"/> or <paramref name="scale"/>·z.</summary>
    internal static void FillRow(ProjectionRowRng rng, ProjectionKind kind, float scale, Span<float> destination)
    {
        if (kind == ProjectionKind.Rademacher)
        {
            Span<uint> bits = System.Runtime.InteropServices.MemoryMarshal.Cast<float, uint>(destination);
            rng.FillSignMasks(0, bits);
            for (int j = 0; j < bits.Length; j++)
            {
                bits[j] ^= BitConverter.SingleToUInt32Bits(scale);
            }
        }
        else
        {
            rng.FillNormals(0, destination);
            TensorPrimitives.Multiply(destination, scale, destination);
        }
    }

    private static void CheckLength(long actual, long expected, string name)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"Expected {expected} values, found {actual}.", name);
        }
    }

    private unsafe void Run(ReadOnlySpan<float> gradients, int count, int length, long rowOffset, Span<float> destinations, bool accumulate)
    {
        int k = OutputDim;
        if (count == 0)
        {
            return;
        }
        if (length == 0)
        {
            if (!accumulate)
            {
                destinations.Clear();
            }
            return;
        }

        // Accumulators padded to whole vectors so that the kernels never handle a lane remainder; the padding
        // columns are computed from P's columns ≥ k (well defined) and dropped.
        int kPad = checked((k + ProjectionKernels.ColumnAlignment - 1) / ProjectionKernels.ColumnAlignment * ProjectionKernels.ColumnAlignment);
        float[] accArray = ArrayPool<float>.Shared.Rent(checked(count * kPad));
        try
        {
            var acc = accArray.AsSpan(0, count * kPad);
            for (int b = 0; b < count; b++)
            {
                var row = acc.Slice(b * kPad, kPad);
                if (accumulate)
                {
                    destinations.Slice(b * k, k).CopyTo(row);
                    row[k..].Clear();
                }
                else
                {
                    row.Clear();
                }
            }

            // The k columns are split between threads: each output element is owned by one thread and summed in row order,
            // so the result does not depend on the thread count.
            int tiles = (kPad + PartAlignment - 1) / PartAlignment;
            int threads = MaxDegreeOfParallelism == -1 ? Environment.ProcessorCount : MaxDegreeOfParallelism;
            int parts = Math.Max(1, Math.Min(threads, tiles));
            fixed (float* g = gradients)
            fixed (float* a = accArray)
            {
                var job = new Job(this, (nint)g, count, length, rowOffset, (nint)a, kPad, tiles, parts);
                if (parts == 1)
                {
                    job.RunPart(0);
                }
                else
                {
                    Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, job.RunPart);
                }
            }

            for (int b = 0; b < count; b++)
            {
                acc.Slice(b * kPad, k).CopyTo(destinations.Slice(b * k, k));
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(accArray);
        }
    }

    /// <summary>One call's state, shared by its threads (pointers stay pinned by the caller's fixed blocks).</summary>
    private sealed unsafe class Job(DenseProjector owner, nint gradients, int count, int length, long rowOffset, nint acc, int kPad, int tiles, int parts)
    {
        public void RunPart(int part)
        {
            // Parts are whole 64-column tiles (the last one may be shorter, down to one vector).
            int columnBegin = (int)((long)tiles * part / parts) * PartAlignment;
            int columnEnd = Math.Min(kPad, (int)((long)tiles * (part + 1) / parts) * PartAlignment);
            int rowBlock = Math.Min(owner.RowBlockSize, length);
            int columnBlock = Math.Min(owner.ColumnBlockSize, columnEnd - columnBegin);
            float scale = owner.Scale;
            bool rademacher = owner.Kind == ProjectionKind.Rademacher;

            float[] xArray = ArrayPool<float>.Shared.Rent(count * rowBlock);
            float[] pArray = ArrayPool<float>.Shared.Rent(rowBlock * columnBlock);
            var keys = new ProjectionRowRng[rowBlock];
            try
            {
                fixed (float* x = xArray)
                fixed (float* p = pArray)
                {
                    var g = (float*)gradients;
                    var a = (float*)acc;
                    for (int r0 = 0; r0 < length; r0 += rowBlock)
                    {
                        int rows = Math.Min(rowBlock, length - r0);
                        for (int i = 0; i < rows; i++)
                        {
                            keys[i] = ProjectionRowRng.CreateUnchecked(owner.Seed, 0, rowOffset + r0 + i);
                        }
                        // x[b, i] = s·g[b, r0 + i]: the scale goes on g once rather than on every entry of P.
                        for (int b = 0; b < count; b++)
                        {
                            TensorPrimitives.Multiply(
                                new ReadOnlySpan<float>(g + (nint)b * length + r0, rows), scale, new Span<float>(x + b * rows, rows));
                        }
                        for (int c0 = columnBegin; c0 < columnEnd; c0 += columnBlock)
                        {
                            int columns = Math.Min(columnBlock, columnEnd - c0);
                            for (int i = 0; i < rows; i++)
                            {
                                if (rademacher)
                                {
                                    ProjectionKernels.FillSignMasks(keys[i], c0, new Span<uint>(p + i * columns, columns));
                                }
                                else
                                {
                                    ProjectionKernels.FillNormals(keys[i], c0, new Span<float>(p + i * columns, columns));
                                }
                            }
                            if (rademacher)
                            {
                                ProjectionKernels.Accumulate<SignFlipAdd>(x, rows, count, rows, p, columns, columns, a + c0, kPad);
                            }
                            else
                            {
                                ProjectionKernels.Accumulate<MultiplyAdd>(x, rows, count, rows, p, columns, columns, a + c0, kPad);
                            }
                        }
                    }
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(xArray);
                ArrayPool<float>.Shared.Return(pArray);
            }
        }
    }
}
