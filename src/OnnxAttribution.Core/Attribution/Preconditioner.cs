using System.Buffers.Binary;
using System.Numerics.Tensors;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// TRAK's kernel inverse (ΦᵀΦ + λI)⁻¹ (Park et al. 2023, eq. 13; D-TRAK eq. 9): the Gram matrix of the training
/// features accumulated in float64, damped, and factorised once by Cholesky; a query solves two triangular systems.
/// </summary>
/// <remarks>
/// λ = <c>relativeDamping</c> × mean(diag ΦᵀΦ), so the setting does not depend on the scale of the features.
/// The factor is kept as a packed lower triangle (k(k+1)/2 doubles).
/// </remarks>
public sealed class Preconditioner
{
    private const string FileMagic = "OAPREC01";
    /// <summary>The file version written; readers refuse any other.</summary>
    public const int FormatVersion = 1;

    private readonly double[] _lower; // row-major packed: row i holds L[i, 0..i]
    private readonly long[] _rowStart;

    private Preconditioner(int dim, double[] lower, double relativeDamping, double damping, byte[] featuresFingerprint)
    {
        Dim = dim;
        _lower = lower;
        RelativeDamping = relativeDamping;
        Damping = damping;
        FeaturesFingerprint = featuresFingerprint;
        _rowStart = new long[dim];
        for (int i = 0; i < dim; i++)
        {
            _rowStart[i] = (long)i * (i + 1) / 2;
        }
    }

    /// <summary>k, the feature dimension: the factor is k × k.</summary>
    public int Dim { get; }

    /// <summary>The damping as given, relative to the mean diagonal of ΦᵀΦ.</summary>
    public double RelativeDamping { get; }

    /// <summary>The absolute λ added to the diagonal.</summary>
    public double Damping { get; }

    /// <summary>SHA-256 of the features the Gram matrix was built from.</summary>
    public byte[] FeaturesFingerprint { get; }

    /// <summary>Accumulates ΦᵀΦ over row blocks, in float64 (the lower triangle; the upper is mirrored at the end).</summary>
    public sealed class GramAccumulator
    {
        private readonly int _k;
        private readonly double[] _gram;

        /// <summary>Starts a zero Gram matrix for rows of length <paramref name="dim"/>.</summary>
        /// <exception cref="ArgumentOutOfRangeException"><paramref name="dim"/> is less than 1.</exception>
        public GramAccumulator(int dim)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(dim, 1);
            _k = dim;
            _gram = new double[(long)dim * dim];
        }

        /// <summary>Rows added so far.</summary>
        public long Rows { get; private set; }

        /// <summary>Adds <paramref name="count"/> rows of length k (row-major).</summary>
        public void Add(ReadOnlySpan<float> rows, int count)
        {
            int k = _k;
            if (rows.Length != (long)count * k)
            {
                throw new ArgumentException($"{count} rows of {k} need {(long)count * k} values, got {rows.Length}");
            }
            // Blocks of rows held in float64; each Gram row a gets Σ_r φ_r[a]·φ_r[0..a]: the block stays in cache
            // and the Gram matrix streams once per block.
            const int blockRows = 32;
            var block = new double[blockRows * k];
            for (int start = 0; start < count; start += blockRows)
            {
                int r = Math.Min(blockRows, count - start);
                for (int i = 0; i < r * k; i++)
                {
                    block[i] = rows[start * k + i];
                }
                var g = _gram;
                Parallel.For(0, Environment.ProcessorCount * 4, part =>
                {
                    // Balanced split of the triangle: row a costs a+1.
                    int parts = Environment.ProcessorCount * 4;
                    int lo = (int)(k * Math.Sqrt((double)part / parts));
                    int hi = (int)(k * Math.Sqrt((double)(part + 1) / parts));
                    for (int a = lo; a < hi; a++)
                    {
                        var dst = g.AsSpan((int)((long)a * k), a + 1);
                        for (int row = 0; row < r; row++)
                        {
                            double v = block[row * k + a];
                            if (v != 0)
                            {
                                TensorPrimitives.MultiplyAdd(block.AsSpan(row * k, a + 1), v, dst, dst);
                            }
                        }
                    }
                });
                Rows += r;
            }
        }

        /// <summary>The full symmetric ΦᵀΦ, k×k row-major.</summary>
        public double[] ToMatrix()
        {
            var m = (double[])_gram.Clone();
            for (int a = 0; a < _k; a++)
            {
                for (int b = a + 1; b < _k; b++)
                {
                    m[(long)a * _k + b] = m[(long)b * _k + a];
                }
            }
            return m;
        }

        /// <summary>Factorises ΦᵀΦ + λI.</summary>
        public Preconditioner Factorize(double relativeDamping, byte[] featuresFingerprint) =>
            Preconditioner.Factorize(_gram, _k, relativeDamping, featuresFingerprint);
    }

    /// <summary>Cholesky factorisation of the damped Gram matrix given by its lower triangle (row-major k×k).</summary>
    /// <exception cref="AttributionException">The damped matrix is not positive definite (λ too small for the features).</exception>
    public static Preconditioner Factorize(double[] gramLower, int k, double relativeDamping, byte[] featuresFingerprint)
    {
        ArgumentNullException.ThrowIfNull(gramLower);
        ArgumentOutOfRangeException.ThrowIfNegative(relativeDamping);
        double meanDiag = 0;
        for (int i = 0; i < k; i++)
        {
            meanDiag += gramLower[(long)i * k + i];
        }
        meanDiag /= k;
        double lambda = relativeDamping * (meanDiag > 0 ? meanDiag : 1);
        // Left-looking Cholesky on a row-major square copy: L[i,j] = (A[i,j] − ⟨L[i,:j], L[j,:j]⟩) / L[j,j].
        // Rows are contiguous, so each inner product is one vectorised Dot.
        var a = new double[(long)k * k];
        for (int i = 0; i < k; i++)
        {
            Array.Copy(gramLower, (long)i * k, a, (long)i * k, i + 1);
            a[(long)i * k + i] += lambda;
        }
        for (int j = 0; j < k; j++)
        {
            var rowJ = a.AsSpan((int)((long)j * k), j);
            double diag = a[(long)j * k + j] - TensorPrimitives.Dot<double>(rowJ, rowJ);
            if (!(diag > 0))
            {
                throw new AttributionException($"the Gram matrix plus damping λ = {lambda:G3} (relative {relativeDamping:G3}) is not positive definite at column {j}; raise --damping");
            }
            double ljj = Math.Sqrt(diag);
            a[(long)j * k + j] = ljj;
            int jj = j;
            void Column(int i)
            {
                var rowI = a.AsSpan((int)((long)i * k), jj);
                var rj = a.AsSpan((int)((long)jj * k), jj);
                a[(long)i * k + jj] = (a[(long)i * k + jj] - TensorPrimitives.Dot<double>(rowI, rj)) / ljj;
            }
            int rest = k - j - 1;
            if ((long)rest * j > 200_000)
            {
                Parallel.For(j + 1, k, Column);
            }
            else
            {
                for (int i = j + 1; i < k; i++)
                {
                    Column(i);
                }
            }
        }
        var packed = new double[(long)k * (k + 1) / 2];
        for (int i = 0; i < k; i++)
        {
            Array.Copy(a, (long)i * k, packed, (long)i * (i + 1) / 2, i + 1);
        }
        return new Preconditioner(k, packed, relativeDamping, lambda, featuresFingerprint);
    }

    /// <summary>x = (ΦᵀΦ + λI)⁻¹ q.</summary>
    public void Solve(ReadOnlySpan<float> query, Span<float> destination)
    {
        int k = Dim;
        if (query.Length != k || destination.Length != k)
        {
            throw new ArgumentException($"the preconditioner is {k}-dimensional; query has {query.Length} values, destination {destination.Length}");
        }
        var y = new double[k];
        for (int i = 0; i < k; i++)
        {
            var row = _lower.AsSpan((int)_rowStart[i], i + 1);
            y[i] = (query[i] - TensorPrimitives.Dot<double>(row[..i], y.AsSpan(0, i))) / row[i];
        }
        // Lᵀx = y, going up: x[i] is final once rows below are done; subtract its column (row i of L) from y.
        for (int i = k - 1; i >= 0; i--)
        {
            var row = _lower.AsSpan((int)_rowStart[i], i + 1);
            double xi = y[i] / row[i];
            y[i] = xi;
            TensorPrimitives.MultiplyAdd(row[..i], -xi, y.AsSpan(0, i), y.AsSpan(0, i));
        }
        for (int i = 0; i < k; i++)
        {
            destination[i] = (float)y[i];
        }
    }

    /// <summary>The size of the file <see cref="Save"/> writes for dimension <paramref name="k"/>: a 64-byte header and the packed triangle.</summary>
    public static long FileLength(int k) => 64 + (sizeof(double) * (long)k * (k + 1) / 2);

    /// <summary>Writes the factor to <paramref name="path"/> whole or not at all (see <see cref="WriteTo"/>).</summary>
    /// <exception cref="AttributionException">The file cannot be written (a full disk); no partial file is left.</exception>
    public void Save(string path)
    {
        AtomicFile.Write(path, WriteTo, FileLength(Dim));
    }

    /// <summary>Writes the factor: magic, version, k, damping, relative damping, the features' SHA-256, then the packed triangle (little-endian float64).</summary>
    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Span<byte> header = stackalloc byte[64];
        header.Clear();
        System.Text.Encoding.ASCII.GetBytes(FileMagic, header);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], FormatVersion);
        BinaryPrimitives.WriteInt32LittleEndian(header[12..], Dim);
        BinaryPrimitives.WriteDoubleLittleEndian(header[16..], Damping);
        BinaryPrimitives.WriteDoubleLittleEndian(header[24..], RelativeDamping);
        FeaturesFingerprint.AsSpan(0, 32).CopyTo(header[32..]);
        stream.Write(header);
        stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(_lower.AsSpan()));
    }

    /// <summary>
    /// Whether <paramref name="path"/> holds a complete factor of these features with this relative damping, from its
    /// 64-byte header and its length alone (a resumed build skips a finished factorisation without reading it).
    /// </summary>
    public static bool IsComplete(string path, int dim, byte[] featuresFingerprint, double relativeDamping)
    {
        if (!File.Exists(path))
        {
            return false;
        }
        using var stream = File.OpenRead(path);
        Span<byte> header = stackalloc byte[64];
        return stream.Read(header) == 64
            && System.Text.Encoding.ASCII.GetString(header[..8]) == FileMagic
            && BinaryPrimitives.ReadInt32LittleEndian(header[8..]) == FormatVersion
            && BinaryPrimitives.ReadInt32LittleEndian(header[12..]) == dim
            && BinaryPrimitives.ReadDoubleLittleEndian(header[24..]) == relativeDamping
            && header.Slice(32, 32).SequenceEqual(featuresFingerprint)
            && stream.Length == 64 + ((long)dim * (dim + 1) / 2 * sizeof(double));
    }

    /// <summary>Throws unless every entry of the packed factor is finite and its diagonal positive (one NaN would make every score NaN).</summary>
    private static void RequireFiniteFactor(string path, double[] lower, int k)
    {
        for (int i = 0; i < k; i++)
        {
            long start = (long)i * (i + 1) / 2;
            for (int j = 0; j <= i; j++)
            {
                double v = lower[start + j];
                if (!double.IsFinite(v) || (i == j && !(v > 0)))
                {
                    throw new Store.StoreFormatException($"{path}: entry ({i}, {j}) of the Cholesky factor is {v.ToString(System.Globalization.CultureInfo.InvariantCulture)}; " +
                        $"expected a finite value{(i == j ? " > 0 on the diagonal" : "")}: the file is damaged; run 'finalize' again");
                }
            }
        }
    }

    /// <summary>Reads a factor written by <see cref="Save"/>, checking it belongs to the given features and is finite.</summary>
    /// <exception cref="AttributionException">The file is missing, damaged (<see cref="Store.StoreFormatException"/> for a
    /// non-finite entry), or was built from other features.</exception>
    public static Preconditioner Load(string path, int expectedDim, byte[] featuresFingerprint)
    {
        if (!File.Exists(path))
        {
            throw new AttributionException($"{path} not found: run 'finalize' on the store first");
        }
        using var stream = File.OpenRead(path);
        Span<byte> header = stackalloc byte[64];
        if (stream.Read(header) != 64 || System.Text.Encoding.ASCII.GetString(header[..8]) != FileMagic)
        {
            throw new AttributionException($"{path}: not a preconditioner file (magic {FileMagic} expected)");
        }
        int version = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
        int k = BinaryPrimitives.ReadInt32LittleEndian(header[12..]);
        if (version != FormatVersion || k != expectedDim)
        {
            throw new AttributionException($"{path}: version {version}, dimension {k}; expected version {FormatVersion}, dimension {expectedDim}");
        }
        if (!header.Slice(32, 32).SequenceEqual(featuresFingerprint))
        {
            throw new AttributionException($"{path}: built from other features (fingerprint {Convert.ToHexString(header.Slice(32, 8))}… vs the store's {Convert.ToHexString(featuresFingerprint.AsSpan(0, 8))}…); run 'finalize' again");
        }
        var lower = new double[(long)k * (k + 1) / 2];
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(lower.AsSpan());
        if (stream.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false) != bytes.Length || stream.Position != stream.Length)
        {
            throw new AttributionException($"{path}: expected {64 + bytes.Length} bytes, the file has {stream.Length}");
        }
        RequireFiniteFactor(path, lower, k);
        return new Preconditioner(k, lower, BinaryPrimitives.ReadDoubleLittleEndian(header[24..]), BinaryPrimitives.ReadDoubleLittleEndian(header[16..]), header.Slice(32, 32).ToArray());
    }
}
