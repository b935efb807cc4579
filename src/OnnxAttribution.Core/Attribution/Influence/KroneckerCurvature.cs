using System.Text;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution.Influence;

/// <summary>A weight matrix with Kronecker factors: its name, inDim (in-channels × kernel taps), outDim and positions S.</summary>
internal readonly record struct KroneckerLayerShape(string Name, int InDim, int OutDim, int Positions);

/// <summary>Which eigenvalues scale the Kronecker eigenbasis.</summary>
internal enum CurvatureKind
{
    /// <summary>K-FAC (Martens &amp; Grosse 2015): the products λ_B,i·λ_A,j of the factors' eigenvalues.</summary>
    Kfac,

    /// <summary>EK-FAC (George et al. 2018): eigenvalues refit per coordinate of the eigenbasis from per-example gradients.</summary>
    Ekfac,
}

/// <summary>
/// One layer's block of the Gauss–Newton matrix in Kronecker-factored form, G_ℓ ≈ B ⊗ A on vec(W) with W = outDim × inDim
/// row-major (vec(g aᵀ) = g ⊗ a), held as the eigendecompositions A = Q_A diag(λ_A) Q_Aᵀ and B = Q_B diag(λ_B) Q_Bᵀ and,
/// for EK-FAC, the refit eigenvalues Λ (outDim × inDim) of the basis Q_B ⊗ Q_A (George et al. 2018).
/// </summary>
internal sealed class KroneckerLayer
{
    private double[]? _used;

    /// <summary>Creates a layer block; the decompositions must match the shape (A: inDim, B: outDim).</summary>
    /// <exception cref="ArgumentException">A size does not match the shape.</exception>
    public KroneckerLayer(KroneckerLayerShape shape, EigenDecomposition input, EigenDecomposition output, double[]? corrected = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        if (input.Dim != shape.InDim || output.Dim != shape.OutDim || (corrected is not null && corrected.Length != (long)shape.InDim * shape.OutDim))
        {
            throw new ArgumentException($"layer {shape.Name} ({shape.OutDim}×{shape.InDim}): factors of sizes {input.Dim} and {output.Dim}, corrected eigenvalues {corrected?.Length}");
        }
        Shape = shape;
        Input = input;
        Output = output;
        Corrected = corrected;
    }

    /// <summary>The weight matrix: name, inDim, outDim and positions S.</summary>
    public KroneckerLayerShape Shape { get; }

    /// <summary>A = E[a aᵀ], the input factor (inDim × inDim).</summary>
    public EigenDecomposition Input { get; }

    /// <summary>B = E[Σₛ g gᵀ], the output-gradient factor (outDim × outDim).</summary>
    public EigenDecomposition Output { get; }

    /// <summary>EK-FAC's Λ (outDim × inDim, row-major), or null for K-FAC.</summary>
    public double[]? Corrected { get; }

    /// <summary>K-FAC's eigenvalues in the same layout as <see cref="Corrected"/>: λ_B,o·λ_A,i at o·inDim + i (negative rounding clamped to 0).</summary>
    public double[] KroneckerEigenvalues()
    {
        int n = Shape.InDim, m = Shape.OutDim;
        var d = new double[(long)m * n];
        for (int o = 0; o < m; o++)
        {
            double b = Math.Max(0, Output.Values[o]);
            for (int i = 0; i < n; i++)
            {
                d[(long)o * n + i] = b * Math.Max(0, Input.Values[i]);
            }
        }
        return d;
    }

    /// <summary>The eigenvalues the inverse uses (a copy): <see cref="Corrected"/> when present, else the Kronecker products.</summary>
    public double[] Eigenvalues() => (double[])Used.Clone();

    /// <summary>The eigenvalues the inverse uses, computed once (a benign race: every thread computes the same array).</summary>
    private double[] Used => _used ??= Corrected ?? KroneckerEigenvalues();

    /// <summary>The absolute damping λ = <paramref name="relativeDamping"/> × the mean eigenvalue (× 1 when the layer has no curvature).</summary>
    public double Damping(double relativeDamping)
    {
        double mean = Used.Average();
        return relativeDamping * (mean > 0 ? mean : 1);
    }

    /// <summary>
    /// The damped inverse-Hessian–vector product on this layer: V ↦ Q_B [(Q_Bᵀ V Q_A) ⊘ (D + λ)] Q_Aᵀ, D the eigenvalues
    /// (<see cref="Eigenvalues"/>) and λ = <see cref="Damping"/>, which is (B ⊗ A + λI)⁻¹ vec(V) for K-FAC (Martens &amp;
    /// Grosse 2015, the eigenbasis inverse of a damped Kronecker product; Grosse et al. 2023 and George et al. 2018 for EK-FAC).
    /// </summary>
    /// <param name="gradient">V, outDim × inDim row-major.</param>
    /// <param name="relativeDamping">λ relative to the mean eigenvalue; positive.</param>
    /// <param name="destination">outDim × inDim values, overwritten.</param>
    /// <exception cref="ArgumentException">A length does not match the layer.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The damping is not positive.</exception>
    public void InverseProduct(ReadOnlySpan<double> gradient, double relativeDamping, Span<double> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(relativeDamping);
        int n = Shape.InDim, m = Shape.OutDim;
        if (gradient.Length != (long)m * n || destination.Length != (long)m * n)
        {
            throw new ArgumentException($"layer {Shape.Name}: {m}×{n} = {(long)m * n} values expected, got {gradient.Length} and {destination.Length}");
        }
        var d = Used;
        double lambda = Damping(relativeDamping);
        var t = new double[m * n];
        var w = new double[m * n];
        KroneckerKernels.Multiply(gradient, false, Input.Vectors, false, m, n, n, t);        // V Q_A
        KroneckerKernels.Multiply(Output.Vectors, true, t, false, m, m, n, w);               // Q_Bᵀ V Q_A
        for (int e = 0; e < w.Length; e++)
        {
            w[e] /= d[e] + lambda;
        }
        KroneckerKernels.Multiply(Output.Vectors, false, w, false, m, m, n, t);              // Q_B W
        KroneckerKernels.Multiply(t, false, Input.Vectors, true, m, n, n, destination);      // Q_B W Q_Aᵀ
    }
}

/// <summary>
/// The Kronecker-factored curvature of a model's weight matrices (K-FAC or EK-FAC), with the fingerprint of the inputs it
/// was estimated from; file <c>kfac.bin</c> of a kfac/ekfac method store.
/// </summary>
/// <remarks>
/// File layout, little-endian, version 1: a 64-byte header — magic "OAKFAC01" (8 bytes), int32 version, int32 kind
/// (0 K-FAC, 1 EK-FAC), int32 layer count, int32 0, int64 samples (example × (t, ε) pairs averaged over), the inputs'
/// SHA-256 (32 bytes) — then per layer: int32 name length in UTF-8 bytes, the name, int32 inDim, outDim, positions, and
/// float64 Q_A (inDim², row-major), λ_A (inDim), Q_B (outDim²), λ_B (outDim), and for EK-FAC Λ (outDim·inDim).
/// </remarks>
internal sealed class KroneckerCurvature
{
    private const string FileMagic = "OAKFAC01";
    /// <summary>The file version written; <see cref="Load"/> refuses any other.</summary>
    public const int FormatVersion = 1;
    /// <summary>Length of the file header before the first layer.</summary>
    public const int HeaderBytes = 64;

    /// <summary>Creates the curvature of the layers; every layer must carry Λ exactly when the kind is EK-FAC.</summary>
    /// <exception cref="ArgumentException">The layers do not fit the kind, or the fingerprint is not 32 bytes.</exception>
    public KroneckerCurvature(CurvatureKind kind, IReadOnlyList<KroneckerLayer> layers, long samples, byte[] fingerprint)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(fingerprint);
        if (fingerprint.Length != 32)
        {
            throw new ArgumentException($"the fingerprint is a SHA-256 (32 bytes), got {fingerprint.Length}", nameof(fingerprint));
        }
        if (layers.Any(l => (l.Corrected is not null) != (kind == CurvatureKind.Ekfac)))
        {
            throw new ArgumentException($"{kind}: every layer must {(kind == CurvatureKind.Ekfac ? "" : "not ")}carry refit eigenvalues", nameof(layers));
        }
        Kind = kind;
        Layers = [.. layers];
        Samples = samples;
        Fingerprint = fingerprint;
    }

    /// <summary>K-FAC or EK-FAC: whether the layers carry refit eigenvalues Λ.</summary>
    public CurvatureKind Kind { get; }

    /// <summary>One block per weight matrix, in the gradient graph's layer order.</summary>
    public IReadOnlyList<KroneckerLayer> Layers { get; }

    /// <summary>Example × (t, ε) samples the factors average over.</summary>
    public long Samples { get; }

    /// <summary>SHA-256 of the inputs (model, data, plan, Fisher seed, layers) the factors were estimated from.</summary>
    public byte[] Fingerprint { get; }

    /// <summary>The layer shapes, in order.</summary>
    public IReadOnlyList<KroneckerLayerShape> Shapes => Layers.Select(l => l.Shape).ToList();

    /// <summary>Writes the file atomically (a temporary file, then a rename).</summary>
    public void Save(string path)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("kfac.bin is written on little-endian machines only");
        }
        var tmp = path + ".tmp";
        using (var stream = File.Create(tmp))
        using (var w = new BinaryWriter(stream, Encoding.UTF8))
        {
            Span<byte> header = stackalloc byte[HeaderBytes];
            header.Clear();
            Encoding.ASCII.GetBytes(FileMagic, header);
            BitConverter.TryWriteBytes(header[8..], FormatVersion);
            BitConverter.TryWriteBytes(header[12..], (int)Kind);
            BitConverter.TryWriteBytes(header[16..], Layers.Count);
            BitConverter.TryWriteBytes(header[24..], Samples);
            Fingerprint.CopyTo(header[32..]);
            w.Write(header);
            foreach (var layer in Layers)
            {
                var name = Encoding.UTF8.GetBytes(layer.Shape.Name);
                w.Write(name.Length);
                w.Write(name);
                w.Write(layer.Shape.InDim);
                w.Write(layer.Shape.OutDim);
                w.Write(layer.Shape.Positions);
                WriteDoubles(w, layer.Input.Vectors);
                WriteDoubles(w, layer.Input.Values);
                WriteDoubles(w, layer.Output.Vectors);
                WriteDoubles(w, layer.Output.Values);
                if (layer.Corrected is not null)
                {
                    WriteDoubles(w, layer.Corrected);
                }
            }
        }
        File.Move(tmp, path, overwrite: true);
    }

    private static void WriteDoubles(BinaryWriter w, double[] values) =>
        w.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));

    /// <summary>Reads a file written by <see cref="Save"/>.</summary>
    /// <exception cref="StoreFormatException">The file is missing, not a K-FAC file, of another version, or truncated.</exception>
    public static KroneckerCurvature Load(string path)
    {
        if (!File.Exists(path))
        {
            throw new StoreFormatException($"{path} not found: build the store with 'featurize --method kfac' (or ekfac)");
        }
        using var stream = File.OpenRead(path);
        using var r = new BinaryReader(stream, Encoding.UTF8);
        try
        {
            var header = r.ReadBytes(HeaderBytes);
            if (header.Length != HeaderBytes || Encoding.ASCII.GetString(header, 0, 8) != FileMagic)
            {
                throw new StoreFormatException($"{path}: not a K-FAC factor file (magic {FileMagic} expected)");
            }
            int version = BitConverter.ToInt32(header, 8);
            int kind = BitConverter.ToInt32(header, 12);
            int count = BitConverter.ToInt32(header, 16);
            if (version != FormatVersion || kind is < 0 or > 1 || count < 1)
            {
                throw new StoreFormatException($"{path}: version {version}, kind {kind}, {count} layers; expected version {FormatVersion}, kind 0 or 1, at least one layer");
            }
            long samples = BitConverter.ToInt64(header, 24);
            var fingerprint = header.AsSpan(32, 32).ToArray();
            var layers = new List<KroneckerLayer>(count);
            for (int l = 0; l < count; l++)
            {
                int nameLength = r.ReadInt32();
                if (nameLength is < 1 or > 4096)
                {
                    throw new StoreFormatException($"{path}: layer {l}: field 'name length' is {nameLength}");
                }
                string name = Encoding.UTF8.GetString(r.ReadBytes(nameLength));
                int inDim = r.ReadInt32(), outDim = r.ReadInt32(), positions = r.ReadInt32();
                if (inDim is < 1 or > 46340 || outDim is < 1 or > 46340 || positions < 1)
                {
                    throw new StoreFormatException($"{path}: layer {name}: dimensions {outDim}×{inDim} at {positions} positions");
                }
                var shape = new KroneckerLayerShape(name, inDim, outDim, positions);
                var input = new EigenDecomposition(inDim, Values: [], Vectors: ReadDoubles(r, (long)inDim * inDim, path));
                input = input with { Values = ReadDoubles(r, inDim, path) };
                var output = new EigenDecomposition(outDim, Values: [], Vectors: ReadDoubles(r, (long)outDim * outDim, path));
                output = output with { Values = ReadDoubles(r, outDim, path) };
                var corrected = kind == (int)CurvatureKind.Ekfac ? ReadDoubles(r, (long)outDim * inDim, path) : null;
                layers.Add(new KroneckerLayer(shape, input, output, corrected));
            }
            if (stream.Position != stream.Length)
            {
                throw new StoreFormatException($"{path}: {stream.Length - stream.Position} bytes after the last layer");
            }
            return new KroneckerCurvature((CurvatureKind)kind, layers, samples, fingerprint);
        }
        catch (EndOfStreamException e)
        {
            throw new StoreFormatException($"{path}: truncated ({stream.Length} bytes)", e);
        }
    }

    private static double[] ReadDoubles(BinaryReader r, long count, string path)
    {
        var values = new double[count];
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan());
        if (r.BaseStream.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false) != bytes.Length)
        {
            throw new StoreFormatException($"{path}: truncated ({r.BaseStream.Length} bytes)");
        }
        return values;
    }
}
