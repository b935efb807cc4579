using System.Buffers;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;

namespace OnnxAttribution.Core.Attribution.Influence;

/// <summary>
/// Float64 sums over examples and (t, ε) pairs of one pass of a curvature estimate, fed a batch of Kronecker factors
/// (<see cref="LayerFactors"/>, one entry per layer) at a time; a resumable pass saves and restores them.
/// </summary>
internal abstract class CurvatureAccumulator
{
    private protected CurvatureAccumulator(IReadOnlyList<KroneckerLayerShape> layers, IEnumerable<long> sizes)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Count == 0)
        {
            throw new ArgumentException("no layers with Kronecker factors", nameof(layers));
        }
        Layers = [.. layers];
        Sums = sizes.Select(n => new double[n]).ToArray();
    }

    /// <summary>The layers summed over, in the order of the factors given to <see cref="Add"/>.</summary>
    public IReadOnlyList<KroneckerLayerShape> Layers { get; }

    /// <summary>Example × pair samples added so far.</summary>
    public long Samples { get; private set; }

    /// <summary>The running sums, in a fixed order (saved and restored as they are).</summary>
    private protected double[][] Sums { get; }

    /// <summary>Adds the factors of <paramref name="count"/> examples at one (t, ε) pair.</summary>
    /// <exception cref="ArgumentException">The factors do not match the layers or the count.</exception>
    public void Add(IReadOnlyList<LayerFactors> factors, int count)
    {
        ArgumentNullException.ThrowIfNull(factors);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (factors.Count != Layers.Count)
        {
            throw new ArgumentException($"{factors.Count} layers of factors for {Layers.Count} layers", nameof(factors));
        }
        for (int l = 0; l < Layers.Count; l++)
        {
            var (name, inDim, outDim, positions) = Layers[l];
            var f = factors[l];
            if (f.Positions != positions || f.Activations.Length != (long)count * positions * inDim || f.OutputGradients.Length != (long)count * positions * outDim)
            {
                throw new ArgumentException(
                    $"layer {name}: expected {count}×{positions}×{inDim} activations and {count}×{positions}×{outDim} output gradients, " +
                    $"got {f.Activations.Length} and {f.OutputGradients.Length} values at {f.Positions} positions", nameof(factors));
            }
        }
        AddChecked(factors, count);
        Samples += count;
    }

    private protected abstract void AddChecked(IReadOnlyList<LayerFactors> factors, int count);

    /// <summary>Writes the sample count and the sums.</summary>
    internal void WriteState(BinaryWriter writer)
    {
        writer.Write(Samples);
        foreach (var sum in Sums)
        {
            writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(sum.AsSpan()));
        }
    }

    /// <summary>Reads what <see cref="WriteState"/> wrote, replacing the sums.</summary>
    /// <exception cref="EndOfStreamException">The data ends early.</exception>
    internal void ReadState(BinaryReader reader)
    {
        Samples = reader.ReadInt64();
        foreach (var sum in Sums)
        {
            var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(sum.AsSpan());
            if (reader.BaseStream.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false) != bytes.Length)
            {
                throw new EndOfStreamException();
            }
        }
    }

    /// <summary>The bytes <see cref="WriteState"/> writes.</summary>
    internal long StateBytes => 8 + Sums.Sum(s => (long)s.Length * 8);

    /// <summary>Activations (S × inDim) and output gradients (S × outDim) of example <paramref name="example"/> at layer <paramref name="layer"/>.</summary>
    private protected (ReadOnlyMemory<float> A, ReadOnlyMemory<float> G) Example(IReadOnlyList<LayerFactors> factors, int layer, int example)
    {
        var (_, inDim, outDim, s) = Layers[layer];
        return (factors[layer].Activations.Slice(example * s * inDim, s * inDim), factors[layer].OutputGradients.Slice(example * s * outDim, s * outDim));
    }
}

/// <summary>
/// K-FAC's factors with the "expand" treatment of weight sharing (Eschenhagen et al. 2023; Mlodozeniec et al. 2024,
/// K-FAC for diffusion models): A = E_{n,t,ε}[(1/S) Σₛ aₛ aₛᵀ] and B = E_{n,t,ε}[Σₛ gₛ gₛᵀ], gₛ from a Monte-Carlo Fisher cotangent.
/// </summary>
/// <remarks>
/// <para>Scaling. The block of the Gauss–Newton matrix of layer ℓ is E[vec Ĝ vec Ĝᵀ] with Ĝ = Σₛ gₛ aₛᵀ, i.e.
/// E[Σₛ Σₛ′ gₛgₛ′ᵀ ⊗ aₛaₛ′ᵀ]. K-FAC-expand treats the S positions as S examples sharing the weight: it drops the
/// s ≠ s′ terms and takes g independent of a, E[Σₛ gₛgₛᵀ ⊗ aₛaₛᵀ] ≈ E[Σₛ gₛgₛᵀ] ⊗ E_s[aₛaₛᵀ] — the gradient factor
/// summed over positions, the input factor averaged. For a linear layer (S = 1) this is plain K-FAC. With one example,
/// one pair and S = 1, B ⊗ A is exactly vec Ĝ vec Ĝᵀ (the EK-FAC refit then equals these eigenvalues).</para>
/// <para>Numerics: each example's S-position product is a float32 fused multiply-add sum; the sums over examples and
/// pairs are float64. Only the lower triangles are summed; <see cref="Decompose"/> mirrors them.</para>
/// </remarks>
internal sealed class KroneckerFactorAccumulator : CurvatureAccumulator
{
    /// <summary>Rows of a factor computed by one task.</summary>
    private const int BlockRows = 64;

    private readonly (int Sum, int Layer, bool Output, int First, int Last)[] _tasks;

    /// <summary>Starts zero sums of A (inDim²) and B (outDim²) for every layer.</summary>
    /// <exception cref="ArgumentException">There are no layers.</exception>
    public KroneckerFactorAccumulator(IReadOnlyList<KroneckerLayerShape> layers)
        : base(layers, (layers ?? throw new ArgumentNullException(nameof(layers))).SelectMany(l => new[] { (long)l.InDim * l.InDim, (long)l.OutDim * l.OutDim }))
    {
        var tasks = new List<(int, int, bool, int, int)>();
        for (int l = 0; l < Layers.Count; l++)
        {
            foreach (bool output in new[] { false, true })
            {
                int dim = output ? Layers[l].OutDim : Layers[l].InDim;
                for (int first = 0; first < dim; first += BlockRows)
                {
                    tasks.Add((2 * l + (output ? 1 : 0), l, output, first, Math.Min(dim, first + BlockRows)));
                }
            }
        }
        // Largest first (a block's cost grows with its last row and the layer's positions), for the thread pool's balance.
        _tasks = [.. tasks.OrderByDescending(t => (long)t.Item5 * (t.Item5 - t.Item4) * Layers[t.Item2].Positions)];
    }

    private protected override void AddChecked(IReadOnlyList<LayerFactors> factors, int count) =>
        Parallel.ForEach(_tasks, task =>
        {
            var shape = Layers[task.Layer];
            int dim = task.Output ? shape.OutDim : shape.InDim;
            for (int n = 0; n < count; n++)
            {
                var (a, g) = Example(factors, task.Layer, n);
                KroneckerKernels.AddGramRows((task.Output ? g : a).Span, shape.Positions, dim, task.First, task.Last, Sums[task.Sum]);
            }
        });

    /// <summary>The factors A and B of layer <paramref name="layer"/> (row-major, symmetric) from the sums so far.</summary>
    public (double[] A, double[] B) Factors(int layer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, Layers.Count);
        var shape = Layers[layer];
        double samples = Math.Max(1L, Samples);
        return (Mirror(Sums[2 * layer], shape.InDim, 1 / (samples * shape.Positions)), Mirror(Sums[2 * layer + 1], shape.OutDim, 1 / samples));
    }

    private static double[] Mirror(double[] lower, int n, double scale)
    {
        var m = new double[(long)n * n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j <= i; j++)
            {
                m[(long)i * n + j] = m[(long)j * n + i] = lower[(long)i * n + j] * scale;
            }
        }
        return m;
    }

    /// <summary>Eigendecomposes every layer's A and B (in parallel, largest first): the K-FAC curvature.</summary>
    /// <param name="fingerprint">SHA-256 of the inputs, recorded in the result.</param>
    /// <param name="progress">Reports decompositions done of 2 × layers.</param>
    public KroneckerCurvature Decompose(byte[] fingerprint, IProgress<(long Done, long Total)>? progress = null)
    {
        if (Samples == 0)
        {
            throw new InvalidOperationException("no factors were added");
        }
        int count = Layers.Count;
        var results = new EigenDecomposition[2 * count];
        long done = 0;
        var order = Enumerable.Range(0, 2 * count).OrderByDescending(i => i % 2 == 0 ? Layers[i / 2].InDim : Layers[i / 2].OutDim).ToArray();
        Parallel.ForEach(order, i =>
        {
            var (a, b) = Factors(i / 2);
            var shape = Layers[i / 2];
            results[i] = i % 2 == 0 ? SymmetricEigen.Decompose(a, shape.InDim) : SymmetricEigen.Decompose(b, shape.OutDim);
            progress?.Report((Interlocked.Increment(ref done), 2L * count));
        });
        var layers = Enumerable.Range(0, count).Select(l => new KroneckerLayer(Layers[l], results[2 * l], results[2 * l + 1])).ToList();
        return new KroneckerCurvature(CurvatureKind.Kfac, layers, Samples, fingerprint);
    }
}

/// <summary>
/// EK-FAC's eigenvalue refit (George et al. 2018; Grosse et al. 2023, EK-FAC): in K-FAC's eigenbasis,
/// Λ_ij = E_{n,t,ε}[(Q_Bᵀ Ĝ Q_A)_ij²] over per-example Monte-Carlo Fisher gradients Ĝ = Σₛ gₛ aₛᵀ of the same pass
/// design as the factors (the diagonal of the Gauss–Newton block in that basis, cross-position terms included).
/// </summary>
/// <remarks>
/// Each example's rotated gradient is float32 (rotations by float32 copies of Q_A, Q_B), squared and summed in float64.
/// Per layer it costs S·(inDim² + outDim² + inDim·outDim) rotating the factors first or outDim·inDim·(S + inDim + outDim)
/// forming Ĝ first; the cheaper is used.
/// </remarks>
internal sealed class EigenvalueAccumulator : CurvatureAccumulator
{
    private readonly KroneckerCurvature _basis;
    private readonly float[][] _qa, _qb, _qbt;

    /// <summary>Starts a refit in the eigenbases of <paramref name="kfac"/>.</summary>
    public EigenvalueAccumulator(KroneckerCurvature kfac)
        : base(kfac?.Shapes ?? throw new ArgumentNullException(nameof(kfac)), kfac.Shapes.Select(l => (long)l.InDim * l.OutDim))
    {
        _basis = kfac;
        _qa = kfac.Layers.Select(l => l.Input.Vectors.Select(v => (float)v).ToArray()).ToArray();
        _qb = kfac.Layers.Select(l => l.Output.Vectors.Select(v => (float)v).ToArray()).ToArray();
        _qbt = kfac.Layers.Select((l, i) =>
        {
            var t = new float[_qb[i].Length];
            KroneckerKernels.Transpose(_qb[i], l.Shape.OutDim, l.Shape.OutDim, t);
            return t;
        }).ToArray();
    }

    private protected override void AddChecked(IReadOnlyList<LayerFactors> factors, int count)
    {
        int layers = Layers.Count;
        var rotated = new float[layers * count][];
        try
        {
            Parallel.For(0, layers * count, task =>
            {
                int l = task / count, n = task % count;
                var shape = Layers[l];
                var m = ArrayPool<float>.Shared.Rent(shape.InDim * shape.OutDim);
                Rotate(l, Example(factors, l, n), m);
                rotated[task] = m;
            });
            Parallel.For(0, layers, l =>
            {
                var sum = Sums[l];
                for (int n = 0; n < count; n++)
                {
                    var m = rotated[l * count + n];
                    for (int e = 0; e < sum.Length; e++)
                    {
                        double v = m[e];
                        sum[e] += v * v;
                    }
                }
            });
        }
        finally
        {
            foreach (var m in rotated)
            {
                if (m is not null)
                {
                    ArrayPool<float>.Shared.Return(m);
                }
            }
        }
    }

    /// <summary>destination (outDim × inDim) = Q_Bᵀ (Σₛ gₛ aₛᵀ) Q_A for one example.</summary>
    private void Rotate(int layer, (ReadOnlyMemory<float> A, ReadOnlyMemory<float> G) example, Span<float> destination)
    {
        var (_, n, m, s) = Layers[layer];
        var a = example.A.Span;
        var g = example.G.Span;
        bool factorsFirst = (long)s * ((long)n * n + (long)m * m + (long)n * m) < (long)m * n * (s + n + m);
        var t1 = ArrayPool<float>.Shared.Rent(Math.Max(s * n, m * n));
        var t2 = ArrayPool<float>.Shared.Rent(s * m);
        var scratch = ArrayPool<float>.Shared.Rent(Math.Max(s * m, m * n));
        try
        {
            if (factorsFirst)
            {
                KroneckerKernels.Multiply(a, n, s, n, _qa[layer], n, n, t1);              // ã = a Q_A   (S × in)
                KroneckerKernels.Multiply(g, m, s, m, _qb[layer], m, m, t2);              // g̃ = g Q_B   (S × out)
                KroneckerKernels.OuterSum(t1.AsSpan(0, s * n), t2.AsSpan(0, s * m), s, n, m, scratch, destination[..(m * n)]);
            }
            else
            {
                KroneckerKernels.OuterSum(a, g, s, n, m, scratch, t1);                   // Ĝ           (out × in)
                KroneckerKernels.Multiply(t1, n, m, n, _qa[layer], n, n, scratch);       // Ĝ Q_A
                KroneckerKernels.Multiply(_qbt[layer], m, m, m, scratch, n, n, destination[..(m * n)]);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(t1);
            ArrayPool<float>.Shared.Return(t2);
            ArrayPool<float>.Shared.Return(scratch);
        }
    }

    /// <summary>The EK-FAC curvature: K-FAC's eigenbases with Λ = the mean squared rotated gradients.</summary>
    public KroneckerCurvature Refit()
    {
        if (Samples == 0)
        {
            throw new InvalidOperationException("no gradients were added");
        }
        var layers = _basis.Layers.Select((l, i) => new KroneckerLayer(l.Shape, l.Input, l.Output, Sums[i].Select(v => v / Samples).ToArray())).ToList();
        return new KroneckerCurvature(CurvatureKind.Ekfac, layers, _basis.Samples, _basis.Fingerprint);
    }
}
