using System.Buffers;

namespace OnnxAttribution.Runtime.Projection;

/// <summary>
/// A factored (Kronecker) projection of per-layer weight gradients: for each layer ℓ, y_ℓ = vec(P_outᵀ G P_in) =
/// Σₛ (P_outᵀ gₛ) ⊗ (P_inᵀ aₛ), with small P_in ∈ ℝ^{inDim×kIn} and P_out ∈ ℝ^{outDim×kOut}, costing
/// O(S(inDim·kIn + outDim·kOut) + S·kIn·kOut) per example instead of O(inDim·outDim·k) for a dense projection of G.
/// </summary>
/// <remarks>
/// <para>Layout: y is the concatenation of the layers' blocks in list order; block ℓ starts at ℓ·kIn·kOut and holds
/// (P_outᵀ G P_in)[o, i] at o·kIn + i.</para>
/// <para>P_in and P_out come from <see cref="ProjectionRowRng"/> under the seed, with matrix ids 1 + 2ℓ (P_in of layer ℓ,
/// rows = input coordinates) and 2 + 2ℓ (P_out); ids follow the layer's position in the list, so the same list gives the
/// same matrices. Entries are scaled by 1/√kIn and 1/√kOut, so E‖y_ℓ‖² = ‖G‖²_F. The matrices are small and stored, and
/// both kinds are applied by fused multiply-adds (a Rademacher entry is ±s exactly).</para>
/// <para>This is not a JL projection of vec(G) with independent entries: the entries of P_in ⊗ P_out are products, so its
/// distortion is larger than a dense projection's of the same size (a measured property, not an assumption).
/// Numerics: float32 sums; <see cref="ProjectExample"/> and <see cref="ProjectDense"/> sum in different orders and agree to
/// rounding. Results are deterministic whatever the thread count. The instance is immutable and thread-safe.</para>
/// </remarks>
public sealed class FactoredProjector
{
    private readonly (string Layer, int InDim, int OutDim)[] _layers;
    private readonly float[][] _in;        // [inDim × kInPad], columns ≥ kIn zero
    private readonly float[][] _out;       // [outDim × kOutPad], columns ≥ kOut zero
    private readonly float[][] _outT;      // [kOut × outDim]
    private readonly int _kInPad, _kOutPad;
    private int _maxDegreeOfParallelism = -1;

    /// <summary>Creates the projector and generates every layer's P_in and P_out.</summary>
    /// <param name="layers">Name, inDim (columns of the weight matrix: in-channels × kernel size) and outDim of each layer.</param>
    /// <param name="kIn">Columns of P_in.</param>
    /// <param name="kOut">Columns of P_out.</param>
    /// <param name="kind">The entries' distribution.</param>
    /// <param name="seed">The user's seed.</param>
    /// <exception cref="ArgumentNullException"><paramref name="layers"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A dimension is not positive, or the output would exceed int.MaxValue values.</exception>
    /// <exception cref="ArgumentException">No layers, a layer without a name, a repeated name, or an unknown kind.</exception>
    public FactoredProjector(IReadOnlyList<(string Layer, int InDim, int OutDim)> layers, int kIn, int kOut, ProjectionKind kind, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kIn);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kOut);
        if (!Enum.IsDefined(kind))
        {
            throw new ArgumentException($"Unknown projection kind {kind}.", nameof(kind));
        }
        if (layers.Count == 0)
        {
            throw new ArgumentException("Expected at least one layer.", nameof(layers));
        }
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, inDim, outDim) in layers)
        {
            if (string.IsNullOrEmpty(name) || !names.Add(name))
            {
                throw new ArgumentException($"Layer names must be present and distinct; found '{name}'.", nameof(layers));
            }
            if (inDim <= 0 || outDim <= 0)
            {
                throw new ArgumentOutOfRangeException(nameof(layers), $"Layer '{name}': expected positive dimensions, found {inDim}×{outDim}.");
            }
        }
        long total = (long)layers.Count * kIn * kOut;
        if (total > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(layers), $"The output would hold {total} values, more than a span can.");
        }

        _layers = [.. layers];
        Kind = kind;
        Seed = seed;
        InputProjectionDim = kIn;
        OutputProjectionDim = kOut;
        OutputDim = (int)total;
        _kInPad = Pad(kIn);
        _kOutPad = Pad(kOut);
        float scaleIn = (float)(1.0 / Math.Sqrt(kIn)), scaleOut = (float)(1.0 / Math.Sqrt(kOut));
        _in = new float[_layers.Length][];
        _out = new float[_layers.Length][];
        _outT = new float[_layers.Length][];
        for (int l = 0; l < _layers.Length; l++)
        {
            var (_, inDim, outDim) = _layers[l];
            _in[l] = Generate(InputMatrixId(l), inDim, kIn, _kInPad, scaleIn);
            _out[l] = Generate(OutputMatrixId(l), outDim, kOut, _kOutPad, scaleOut);
            var t = new float[kOut * outDim];
            for (int r = 0; r < outDim; r++)
            {
                for (int c = 0; c < kOut; c++)
                {
                    t[c * outDim + r] = _out[l][r * _kOutPad + c];
                }
            }
            _outT[l] = t;
        }
    }

    /// <summary>Name, inDim and outDim of each layer, in the order of the output's blocks.</summary>
    public IReadOnlyList<(string Layer, int InDim, int OutDim)> Layers => _layers;

    /// <summary>kIn: columns of every P_in.</summary>
    public int InputProjectionDim { get; }

    /// <summary>kOut: columns of every P_out.</summary>
    public int OutputProjectionDim { get; }

    /// <summary>The length of one projected example: layers · kIn · kOut.</summary>
    public int OutputDim { get; }

    /// <summary>The distribution of the entries of every P_in and P_out.</summary>
    public ProjectionKind Kind { get; }

    /// <summary>The seed every P_in and P_out is generated from (<see cref="ProjectionRowRng"/>).</summary>
    public ulong Seed { get; }

    /// <summary>Threads used by <see cref="ProjectBatch"/>; −1 (default) for all cores. Changes speed only, never the result.</summary>
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

    /// <summary>Where layer <paramref name="layer"/>'s block starts in the output.</summary>
    public int LayerOffset(int layer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, _layers.Length);
        return layer * InputProjectionDim * OutputProjectionDim;
    }

    /// <summary>The <see cref="ProjectionRowRng"/> matrix id of layer <paramref name="layer"/>'s P_in.</summary>
    public static uint InputMatrixId(int layer) => checked((uint)(1 + 2 * layer));

    /// <summary>The <see cref="ProjectionRowRng"/> matrix id of layer <paramref name="layer"/>'s P_out.</summary>
    public static uint OutputMatrixId(int layer) => checked((uint)(2 + 2 * layer));

    /// <summary>Copies layer <paramref name="layer"/>'s P_in (inDim × kIn, row-major) to <paramref name="destination"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="layer"/> is not a layer index.</exception>
    /// <exception cref="ArgumentException"><paramref name="destination"/> does not hold inDim·kIn values.</exception>
    public void CopyInputProjection(int layer, Span<float> destination) =>
        CopyUnpadded(_in[CheckLayer(layer)], _layers[layer].InDim, InputProjectionDim, _kInPad, destination);

    /// <summary>Copies layer <paramref name="layer"/>'s P_out (outDim × kOut, row-major) to <paramref name="destination"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="layer"/> is not a layer index.</exception>
    /// <exception cref="ArgumentException"><paramref name="destination"/> does not hold outDim·kOut values.</exception>
    public void CopyOutputProjection(int layer, Span<float> destination) =>
        CopyUnpadded(_out[CheckLayer(layer)], _layers[layer].OutDim, OutputProjectionDim, _kOutPad, destination);

    /// <summary>Projects example <paramref name="example"/> of a batch of factors: destination = [vec(P_outᵀ G_ℓ P_in)]_ℓ.</summary>
    /// <param name="factors">One entry per layer, in the constructor's order, each holding the same batch size B.</param>
    /// <param name="example">Which example of the batch, in [0, B).</param>
    /// <param name="destination"><see cref="OutputDim"/> values, overwritten.</param>
    /// <exception cref="ArgumentNullException"><paramref name="factors"/> is null.</exception>
    /// <exception cref="ArgumentException">The factors do not match the layers or each other.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="example"/> is outside the batch.</exception>
    public void ProjectExample(IReadOnlyList<LayerFactors> factors, int example, Span<float> destination)
    {
        int batch = CheckFactors(factors);
        ArgumentOutOfRangeException.ThrowIfNegative(example);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(example, batch);
        CheckLength(destination.Length, OutputDim, nameof(destination));
        ProjectExampleUnchecked(factors, example, destination);
    }

    /// <summary>Projects examples 0 … count−1 of a batch of factors, examples in parallel.</summary>
    /// <param name="factors">One entry per layer, in the constructor's order, each holding the same batch size B ≥ count.</param>
    /// <param name="count">How many examples to project.</param>
    /// <param name="destinations">count rows of <see cref="OutputDim"/> values, overwritten.</param>
    /// <exception cref="ArgumentNullException"><paramref name="factors"/> is null.</exception>
    /// <exception cref="ArgumentException">The factors do not match the layers or each other, or the destination length is wrong.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is negative or exceeds the batch.</exception>
    public void ProjectBatch(IReadOnlyList<LayerFactors> factors, int count, Span<float> destinations)
    {
        int batch = CheckFactors(factors);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, batch);
        CheckLength(destinations.Length, (long)count * OutputDim, nameof(destinations));
        int threads = MaxDegreeOfParallelism == -1 ? Environment.ProcessorCount : MaxDegreeOfParallelism;
        if (threads == 1 || count <= 1)
        {
            for (int e = 0; e < count; e++)
            {
                ProjectExampleUnchecked(factors, e, destinations.Slice(e * OutputDim, OutputDim));
            }
            return;
        }
        unsafe
        {
            fixed (float* d = destinations)
            {
                nint address = (nint)d;
                int n = OutputDim;
                Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = threads },
                    e => ProjectExampleUnchecked(factors, e, new Span<float>((float*)address + (nint)e * n, n)));
            }
        }
    }

    /// <summary>
    /// Projects explicit weight gradients with the same P_in and P_out: destination = [vec(P_outᵀ G_ℓ P_in)]_ℓ. Equal (to
    /// rounding) to <see cref="ProjectExample"/> of factors whose Σₛ gₛ aₛᵀ is G_ℓ; for tests and for layers whose gradient
    /// is not available as factors.
    /// </summary>
    /// <param name="gradients">One entry per layer: G_ℓ as outDim × inDim values, row-major (a weight tensor's layout).</param>
    /// <param name="destination"><see cref="OutputDim"/> values, overwritten.</param>
    /// <exception cref="ArgumentNullException"><paramref name="gradients"/> is null.</exception>
    /// <exception cref="ArgumentException">The count or a length does not match the layers.</exception>
    public unsafe void ProjectDense(IReadOnlyList<ReadOnlyMemory<float>> gradients, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(gradients);
        CheckLength(gradients.Count, _layers.Length, nameof(gradients));
        for (int l = 0; l < _layers.Length; l++)
        {
            CheckLength(gradients[l].Length, (long)_layers[l].InDim * _layers[l].OutDim, $"{nameof(gradients)}[{l}]");
        }
        CheckLength(destination.Length, OutputDim, nameof(destination));

        int kIn = InputProjectionDim, kOut = OutputProjectionDim;
        int maxOut = _layers.Max(l => l.OutDim);
        float[] tArray = ArrayPool<float>.Shared.Rent(maxOut * _kInPad);
        float[] yArray = ArrayPool<float>.Shared.Rent(kOut * _kInPad);
        try
        {
            fixed (float* t = tArray)
            fixed (float* y = yArray)
            {
                for (int l = 0; l < _layers.Length; l++)
                {
                    var (_, inDim, outDim) = _layers[l];
                    fixed (float* g = gradients[l].Span)
                    fixed (float* pIn = _in[l])
                    fixed (float* pOutT = _outT[l])
                    {
                        // T = G·P_in [outDim × kInPad], then Y = P_outᵀ·T [kOut × kInPad].
                        Multiply(g, inDim, outDim, inDim, pIn, _kInPad, t);
                        Multiply(pOutT, outDim, kOut, outDim, t, _kInPad, y);
                    }
                    CopyBlock(y, destination.Slice(l * kIn * kOut, kIn * kOut));
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(tArray);
            ArrayPool<float>.Shared.Return(yArray);
        }
    }

    private unsafe void ProjectExampleUnchecked(IReadOnlyList<LayerFactors> factors, int example, Span<float> destination)
    {
        int kIn = InputProjectionDim, kOut = OutputProjectionDim;
        int maxS = 0;
        for (int l = 0; l < _layers.Length; l++)
        {
            maxS = Math.Max(maxS, factors[l].Positions);
        }
        float[] aArray = ArrayPool<float>.Shared.Rent(Math.Max(1, maxS * _kInPad));
        float[] gArray = ArrayPool<float>.Shared.Rent(Math.Max(1, maxS * _kOutPad));
        float[] gtArray = ArrayPool<float>.Shared.Rent(Math.Max(1, kOut * maxS));
        float[] yArray = ArrayPool<float>.Shared.Rent(kOut * _kInPad);
        try
        {
            fixed (float* aP = aArray)
            fixed (float* gP = gArray)
            fixed (float* gT = gtArray)
            fixed (float* y = yArray)
            {
                for (int l = 0; l < _layers.Length; l++)
                {
                    var (_, inDim, outDim) = _layers[l];
                    int s = factors[l].Positions;
                    var a = factors[l].Activations.Span.Slice(example * s * inDim, s * inDim);
                    var g = factors[l].OutputGradients.Span.Slice(example * s * outDim, s * outDim);
                    fixed (float* pa = a)
                    fixed (float* pg = g)
                    fixed (float* pIn = _in[l])
                    fixed (float* pOut = _out[l])
                    {
                        // A' = a·P_in [S × kInPad], G' = g·P_out [S × kOutPad], Y = G'ᵀ·A' [kOut × kInPad].
                        Multiply(pa, inDim, s, inDim, pIn, _kInPad, aP);
                        Multiply(pg, outDim, s, outDim, pOut, _kOutPad, gP);
                        for (int o = 0; o < kOut; o++)
                        {
                            for (int p = 0; p < s; p++)
                            {
                                gT[o * s + p] = gP[p * _kOutPad + o];
                            }
                        }
                        Multiply(gT, s, kOut, s, aP, _kInPad, y);
                    }
                    CopyBlock(y, destination.Slice(l * kIn * kOut, kIn * kOut));
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(aArray);
            ArrayPool<float>.Shared.Return(gArray);
            ArrayPool<float>.Shared.Return(gtArray);
            ArrayPool<float>.Shared.Return(yArray);
        }
    }

    /// <summary>c [rows × columns] = x [rows × depth] · p [depth × columns]; columns padded, c's row stride = columns.</summary>
    private static unsafe void Multiply(float* x, int xStride, int rows, int depth, float* p, int columns, float* c)
    {
        new Span<float>(c, rows * columns).Clear();
        ProjectionKernels.Accumulate<MultiplyAdd>(x, xStride, rows, depth, p, columns, columns, c, columns);
    }

    /// <summary>Drops Y's padding columns: destination[o·kIn + i] = y[o, i].</summary>
    private unsafe void CopyBlock(float* y, Span<float> destination)
    {
        int kIn = InputProjectionDim;
        for (int o = 0; o < OutputProjectionDim; o++)
        {
            new ReadOnlySpan<float>(y + o * _kInPad, kIn).CopyTo(destination.Slice(o * kIn, kIn));
        }
    }

    private float[] Generate(uint matrix, int rows, int k, int kPad, float scale)
    {
        var m = new float[rows * kPad];
        for (int r = 0; r < rows; r++)
        {
            DenseProjector.FillRow(ProjectionRowRng.CreateUnchecked(Seed, matrix, r), Kind, scale, m.AsSpan(r * kPad, k));
        }
        return m;
    }

    private int CheckFactors(IReadOnlyList<LayerFactors> factors)
    {
        ArgumentNullException.ThrowIfNull(factors);
        CheckLength(factors.Count, _layers.Length, nameof(factors));
        int batch = -1;
        for (int l = 0; l < _layers.Length; l++)
        {
            var (name, inDim, outDim) = _layers[l];
            var f = factors[l];
            if (f.Positions <= 0)
            {
                throw new ArgumentException($"Layer '{name}': expected a positive position count, found {f.Positions}.", nameof(factors));
            }
            long perA = (long)f.Positions * inDim, perG = (long)f.Positions * outDim;
            if (f.Activations.Length % perA != 0 || f.OutputGradients.Length % perG != 0
                || f.Activations.Length / perA != f.OutputGradients.Length / perG)
            {
                throw new ArgumentException(
                    $"Layer '{name}': expected B×{f.Positions}×{inDim} activations and B×{f.Positions}×{outDim} output gradients, " +
                    $"found {f.Activations.Length} and {f.OutputGradients.Length} values.",
                    nameof(factors));
            }
            int b = (int)(f.Activations.Length / perA);
            if (batch != -1 && b != batch)
            {
                throw new ArgumentException($"Layer '{name}': batch size {b} differs from the first layer's {batch}.", nameof(factors));
            }
            batch = b;
        }
        return batch;
    }

    private int CheckLayer(int layer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, _layers.Length);
        return layer;
    }

    private static void CopyUnpadded(float[] source, int rows, int k, int kPad, Span<float> destination)
    {
        CheckLength(destination.Length, (long)rows * k, nameof(destination));
        for (int r = 0; r < rows; r++)
        {
            source.AsSpan(r * kPad, k).CopyTo(destination.Slice(r * k, k));
        }
    }

    private static void CheckLength(long actual, long expected, string name)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"Expected {expected} values, found {actual}.", name);
        }
    }

    private static int Pad(int k) =>
        checked((k + ProjectionKernels.ColumnAlignment - 1) / ProjectionKernels.ColumnAlignment * ProjectionKernels.ColumnAlignment);
}
