using System.Buffers.Binary;
using System.Numerics.Tensors;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// TRAK's kernel inverse (ΦᵀΦ + λI)⁻¹ (Park et al. 2023, eq. 13; D-TRAK eq. 9): the Gram matrix of the training
/// features accumulated in float64, damped, and factorised once by Cholesky; a query solves two triangular systems.
/// </summary>
/// <remarks>
/// λ = <c>relativeDamping</c> × mean(diag ΦᵀΦ), so the setting does not depend on the scale of the features.
/// The factor is kept as a packed lower triangle (n(n+1)/2 doubles). In the <see cref="KernelForm.Primal"/> form the factored
/// matrix is the k × k ΦᵀΦ + λI; in the <see cref="KernelForm.Dual"/> form it is the N × N ΦΦᵀ + λI, and a query's scores
/// are τ = (ΦΦᵀ + λI)⁻¹ Φ φ_q, the same numbers (Φ(ΦᵀΦ + λI)⁻¹ = (ΦΦᵀ + λI)⁻¹Φ) at a fraction of the cost when N &lt; k.
/// </remarks>
public sealed class Preconditioner
{
    private const string FileMagic = "OAPREC01";
    private const string DualFileMagic = "OAPRECD1";

    /// <summary>
    /// Above this k the k × k Gram matrix (k² doubles, twice while it is factorised) costs more than a store with fewer rows
    /// than k is worth: <see cref="ChooseForm"/> takes the dual form there.
    /// </summary>
    public const int LargestAutomaticPrimalDim = 8192;
    /// <summary>The file version written; readers refuse any other.</summary>
    public const int FormatVersion = 1;

    private readonly double[] _lower; // row-major packed: row i holds L[i, 0..i]
    private readonly long[] _rowStart;

    private Preconditioner(KernelForm form, int order, double[] lower, double relativeDamping, double damping, byte[] featuresFingerprint)
    {
        Form = form;
        Order = order;
        _lower = lower;
        RelativeDamping = relativeDamping;
        Damping = damping;
        FeaturesFingerprint = featuresFingerprint;
        _rowStart = new long[order];
        for (int i = 0; i < order; i++)
        {
            _rowStart[i] = (long)i * (i + 1) / 2;
        }
    }

    /// <summary>Which matrix is factored: ΦᵀΦ + λI (primal) or ΦΦᵀ + λI (dual).</summary>
    public KernelForm Form { get; }

    /// <summary>The order of the factor: k (the feature dimension) in the primal form, N (the store's rows) in the dual.</summary>
    public int Order { get; }

    /// <summary>
    /// The form <see cref="PreconditionerBuilder.Finalize(string, double, IProgress{ValueTuple{long, long}}?, KernelForm?)"/> takes unless told:
    /// primal up to k = <see cref="LargestAutomaticPrimalDim"/> or when the store has at least k rows, dual otherwise.
    /// </summary>
    public static KernelForm ChooseForm(long rows, int dim) =>
        dim > LargestAutomaticPrimalDim && rows < dim ? KernelForm.Dual : KernelForm.Primal;

    /// <summary>The damping as given, relative to the mean diagonal of ΦᵀΦ.</summary>
    public double RelativeDamping { get; }

    /// <summary>The absolute λ added to the diagonal.</summary>
    public double Damping { get; }

    /// <summary>SHA-256 of the features the Gram matrix was built from.</summary>
    public byte[] FeaturesFingerprint { get; }

    /// <summary>
    /// Accumulates ΦᵀΦ over row blocks, in float64 (the lower triangle; the upper is mirrored at the end); or holds the dual
    /// kernel ΦΦᵀ computed whole (<see cref="Dual"/>).
    /// </summary>
    public sealed class GramAccumulator
    {
        private readonly int _k;
        private readonly int _featureDim;
        private readonly double[] _gram;

        /// <summary>Starts a zero Gram matrix for rows of length <paramref name="dim"/>.</summary>
        /// <exception cref="ArgumentOutOfRangeException"><paramref name="dim"/> is less than 1.</exception>
        public GramAccumulator(int dim)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(dim, 1);
            _k = dim;
            _featureDim = dim;
            _gram = new double[(long)dim * dim];
        }

        private GramAccumulator(double[] kernelLower, int rows, int featureDim)
        {
            Form = KernelForm.Dual;
            _k = rows;
            _featureDim = featureDim;
            _gram = kernelLower;
            Rows = rows;
        }

        /// <summary>
        /// The dual kernel ΦΦᵀ of <paramref name="rows"/> rows of length <paramref name="featureDim"/>, given by its lower
        /// triangle in a row-major rows × rows array (taken, not copied).
        /// </summary>
        /// <exception cref="ArgumentException">The array is not rows × rows, or a dimension is less than 1.</exception>
        public static GramAccumulator Dual(double[] kernelLower, int rows, int featureDim)
        {
            ArgumentNullException.ThrowIfNull(kernelLower);
            ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
            ArgumentOutOfRangeException.ThrowIfLessThan(featureDim, 1);
            if (kernelLower.LongLength != (long)rows * rows)
            {
                throw new ArgumentException($"a kernel of {rows} rows needs {(long)rows * rows} values, got {kernelLower.LongLength}", nameof(kernelLower));
            }
            return new GramAccumulator(kernelLower, rows, featureDim);
        }

        /// <summary>Which matrix this is: ΦᵀΦ (primal, k × k) or ΦΦᵀ (dual, N × N).</summary>
        public KernelForm Form { get; } = KernelForm.Primal;

        /// <summary>The order of the kernel: k (primal) or N (dual).</summary>
        public int Order => _k;

        /// <summary>Rows added so far.</summary>
        public long Rows { get; private set; }

        /// <summary>Adds <paramref name="count"/> rows of length k (row-major).</summary>
        /// <exception cref="InvalidOperationException">This is a dual kernel, computed whole.</exception>
        public void Add(ReadOnlySpan<float> rows, int count)
        {
            if (Form == KernelForm.Dual)
            {
                throw new InvalidOperationException("a dual kernel ΦΦᵀ is computed whole; rows cannot be added to it");
            }
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

        private const string GramMagic = "OAGRAM01";

        /// <summary>
        /// Writes ΦᵀΦ (primal form) to <paramref name="path"/> whole or not at all: magic OAGRAM01, k, the rows summed, the
        /// fingerprint of the store it sums (<see cref="PreconditionerBuilder.StoreFingerprint"/>), then the lower triangle row
        /// by row (little-endian float64): adding rows to it later gives the same bits as one pass over all of them.
        /// </summary>
        /// <exception cref="InvalidOperationException">This is a dual kernel.</exception>
        public void Save(string path, byte[] storeFingerprint)
        {
            ArgumentNullException.ThrowIfNull(storeFingerprint);
            if (Form == KernelForm.Dual)
            {
                throw new InvalidOperationException("a dual kernel is not kept: it is computed whole");
            }
            long packed = (long)_k * (_k + 1) / 2;
            AtomicFile.Write(path, stream =>
            {
                Span<byte> header = stackalloc byte[64];
                header.Clear();
                System.Text.Encoding.ASCII.GetBytes(GramMagic, header);
                BinaryPrimitives.WriteInt32LittleEndian(header[8..], _k);
                BinaryPrimitives.WriteInt64LittleEndian(header[16..], Rows);
                storeFingerprint.AsSpan(0, 32).CopyTo(header[32..]);
                stream.Write(header);
                for (int a = 0; a < _k; a++)
                {
                    stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(_gram.AsSpan((int)((long)a * _k), a + 1)));
                }
            }, 64 + (packed * sizeof(double)));
        }

        /// <summary>
        /// The ΦᵀΦ in <paramref name="path"/> when it is a gram file of order <paramref name="dim"/> summed over the store whose
        /// fingerprint is <paramref name="storeFingerprint"/>; null when the file is missing or belongs to other features.
        /// </summary>
        public static GramAccumulator? TryLoad(string path, int dim, byte[] storeFingerprint)
        {
            ArgumentNullException.ThrowIfNull(storeFingerprint);
            if (!File.Exists(path))
            {
                return null;
            }
            using var stream = File.OpenRead(path);
            Span<byte> header = stackalloc byte[64];
            long packed = (long)dim * (dim + 1) / 2;
            if (stream.Length != 64 + (packed * sizeof(double)) || stream.ReadAtLeast(header, 64, throwOnEndOfStream: false) != 64
                || System.Text.Encoding.ASCII.GetString(header[..8]) != GramMagic || BinaryPrimitives.ReadInt32LittleEndian(header[8..]) != dim
                || !header.Slice(32, 32).SequenceEqual(storeFingerprint))
            {
                return null;
            }
            var gram = new GramAccumulator(dim) { Rows = BinaryPrimitives.ReadInt64LittleEndian(header[16..]) };
            for (int a = 0; a < dim; a++)
            {
                stream.ReadExactly(System.Runtime.InteropServices.MemoryMarshal.AsBytes(gram._gram.AsSpan((int)((long)a * dim), a + 1)));
            }
            return gram;
        }

        /// <summary>Factorises ΦᵀΦ + λI (or ΦΦᵀ + λI for a dual kernel, with the same λ).</summary>
        public Preconditioner Factorize(double relativeDamping, byte[] featuresFingerprint) =>
            Preconditioner.Factorize(Form, _gram, _k, _featureDim, relativeDamping, featuresFingerprint);
    }

    /// <summary>Cholesky factorisation of the damped Gram matrix given by its lower triangle (row-major k×k).</summary>
    /// <exception cref="AttributionException">The damped matrix is not positive definite (λ too small for the features).</exception>
    public static Preconditioner Factorize(double[] gramLower, int k, double relativeDamping, byte[] featuresFingerprint) =>
        Factorize(KernelForm.Primal, gramLower, k, k, relativeDamping, featuresFingerprint);

    /// <summary>
    /// Cholesky factorisation of a damped kernel of order <paramref name="k"/>; λ is relative to the mean diagonal of ΦᵀΦ,
    /// trace / <paramref name="featureDim"/> (the trace of ΦΦᵀ is the same), so both forms give the same λ.
    /// </summary>
    private static Preconditioner Factorize(KernelForm form, double[] gramLower, int k, int featureDim, double relativeDamping, byte[] featuresFingerprint)
    {
        ArgumentNullException.ThrowIfNull(gramLower);
        ArgumentOutOfRangeException.ThrowIfNegative(relativeDamping);
        double meanDiag = 0;
        for (int i = 0; i < k; i++)
        {
            meanDiag += gramLower[(long)i * k + i];
        }
        meanDiag /= featureDim;
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
                throw new SettingException("Damping", relativeDamping, $"the kernel plus λ = {lambda:G3} is not positive definite at column {j}: raise the damping");
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
        return new Preconditioner(form, k, packed, relativeDamping, lambda, featuresFingerprint);
    }

    /// <summary>x = (ΦᵀΦ + λI)⁻¹ q (primal form).</summary>
    /// <exception cref="InvalidOperationException">The factor is of the dual form: use <see cref="SolveDual"/> on Φq.</exception>
    public void Solve(ReadOnlySpan<float> query, Span<float> destination)
    {
        if (Form != KernelForm.Primal)
        {
            throw new InvalidOperationException("a dual factor solves (ΦΦᵀ + λI) τ = Φq for the scores (SolveDual), not for a k-vector");
        }
        int k = Order;
        if (query.Length != k || destination.Length != k)
        {
            throw new ArgumentException($"the preconditioner is {k}-dimensional; query has {query.Length} values, destination {destination.Length}");
        }
        var y = new double[k];
        for (int i = 0; i < k; i++)
        {
            y[i] = query[i];
        }
        SolveInPlace(y);
        for (int i = 0; i < k; i++)
        {
            destination[i] = (float)y[i];
        }
    }

    /// <summary>τ = (ΦΦᵀ + λI)⁻¹ r in place, for r = Φφ_q (dual form): the query's scores against every row.</summary>
    /// <exception cref="InvalidOperationException">The factor is of the primal form.</exception>
    public void SolveDual(Span<double> values)
    {
        if (Form != KernelForm.Dual)
        {
            throw new InvalidOperationException("a primal factor solves (ΦᵀΦ + λI) x = φ_q (Solve)");
        }
        if (values.Length != Order)
        {
            throw new ArgumentException($"the dual factor is over {Order} rows; got {values.Length} values", nameof(values));
        }
        SolveInPlace(values);
    }

    /// <summary>Solves L Lᵀ y' = y in place: forward substitution, then back substitution.</summary>
    private void SolveInPlace(Span<double> y)
    {
        int k = Order;
        for (int i = 0; i < k; i++)
        {
            var row = _lower.AsSpan((int)_rowStart[i], i + 1);
            y[i] = (y[i] - TensorPrimitives.Dot<double>(row[..i], y[..i])) / row[i];
        }
        // Lᵀx = y, going up: x[i] is final once rows below are done; subtract its column (row i of L) from y.
        for (int i = k - 1; i >= 0; i--)
        {
            var row = _lower.AsSpan((int)_rowStart[i], i + 1);
            double xi = y[i] / row[i];
            y[i] = xi;
            TensorPrimitives.MultiplyAdd(row[..i], -xi, y[..i], y[..i]);
        }
    }

    /// <summary>The size of the file <see cref="Save"/> writes for a factor of order <paramref name="k"/>: a 64-byte header and the packed triangle.</summary>
    public static long FileLength(int k) => 64 + (sizeof(double) * (long)k * (k + 1) / 2);

    /// <summary>Writes the factor to <paramref name="path"/> whole or not at all (see <see cref="WriteTo"/>).</summary>
    /// <exception cref="AttributionException">The file cannot be written (a full disk); no partial file is left.</exception>
    public void Save(string path)
    {
        AtomicFile.Write(path, WriteTo, FileLength(Order));
    }

    /// <summary>
    /// Writes the factor: magic (OAPREC01 primal, OAPRECD1 dual), version, order, damping, relative damping, the features'
    /// SHA-256, then the packed triangle (little-endian float64).
    /// </summary>
    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Span<byte> header = stackalloc byte[64];
        header.Clear();
        System.Text.Encoding.ASCII.GetBytes(Form == KernelForm.Dual ? DualFileMagic : FileMagic, header);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], FormatVersion);
        BinaryPrimitives.WriteInt32LittleEndian(header[12..], Order);
        BinaryPrimitives.WriteDoubleLittleEndian(header[16..], Damping);
        BinaryPrimitives.WriteDoubleLittleEndian(header[24..], RelativeDamping);
        FeaturesFingerprint.AsSpan(0, 32).CopyTo(header[32..]);
        stream.Write(header);
        stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(_lower.AsSpan()));
    }

    /// <summary>
    /// Whether <paramref name="path"/> holds a complete factor of these features with this relative damping, from its
    /// 64-byte header and its length alone (a resumed build skips a finished factorisation without reading it). Either form
    /// counts: primal of order <paramref name="dim"/>, dual of order <paramref name="rows"/>.
    /// </summary>
    public static bool IsComplete(string path, int dim, long rows, byte[] featuresFingerprint, double relativeDamping)
    {
        ArgumentNullException.ThrowIfNull(featuresFingerprint);
        Span<byte> header = stackalloc byte[64];
        if (ReadHeader(path, header, out long length) is not { } form)
        {
            return false;
        }
        long order = form == KernelForm.Primal ? dim : rows;
        return BinaryPrimitives.ReadInt32LittleEndian(header[8..]) == FormatVersion
            && BinaryPrimitives.ReadInt32LittleEndian(header[12..]) == order
            && BinaryPrimitives.ReadDoubleLittleEndian(header[24..]) == relativeDamping
            && header.Slice(32, 32).SequenceEqual(featuresFingerprint)
            && length == FileLength((int)order);
    }

    /// <summary>The form of the factor in <paramref name="path"/> from its magic, or null when there is no such file or it is not a preconditioner.</summary>
    public static KernelForm? ReadForm(string path) => ReadHeader(path, stackalloc byte[64], out _);

    /// <summary>
    /// The form and relative damping of the factor in <paramref name="path"/>, from its 64-byte header alone (a store's next
    /// version is finalized with the same, without reading the factor); null when there is no such file or it is not a preconditioner.
    /// </summary>
    public static (KernelForm Form, double RelativeDamping)? ReadSettings(string path)
    {
        Span<byte> header = stackalloc byte[64];
        return ReadHeader(path, header, out _) is { } form ? (form, BinaryPrimitives.ReadDoubleLittleEndian(header[24..])) : null;
    }

    /// <summary>
    /// Reads the 64-byte header of <paramref name="path"/> into <paramref name="header"/>: the form its magic names, or null
    /// when the file is missing, shorter than a header, or not a preconditioner; <paramref name="length"/> is the file's size.
    /// </summary>
    private static KernelForm? ReadHeader(string path, Span<byte> header, out long length)
    {
        length = 0;
        if (!File.Exists(path))
        {
            return null;
        }
        using var stream = File.OpenRead(path);
        length = stream.Length;
        return stream.ReadAtLeast(header, header.Length, throwOnEndOfStream: false) == header.Length ? FormOf(header) : null;
    }

    /// <summary>The form a header's magic names, or null for a file that is not a preconditioner.</summary>
    private static KernelForm? FormOf(ReadOnlySpan<byte> header) => System.Text.Encoding.ASCII.GetString(header[..8]) switch
    {
        FileMagic => KernelForm.Primal,
        DualFileMagic => KernelForm.Dual,
        _ => null,
    };

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

    /// <summary>
    /// Reads a factor written by <see cref="Save"/> for a store of <paramref name="rows"/> rows of length
    /// <paramref name="dim"/>, checking it belongs to those features and is finite.
    /// </summary>
    /// <exception cref="AttributionException">The file is missing, damaged (<see cref="Store.StoreFormatException"/> for a
    /// non-finite entry), or was built from other features.</exception>
    public static Preconditioner Load(string path, int dim, long rows, byte[] featuresFingerprint)
    {
        ArgumentNullException.ThrowIfNull(featuresFingerprint);
        return LoadFile(path, dim, rows, featuresFingerprint);
    }

    /// <summary>
    /// As <see cref="Load"/>, taking the features' fingerprint the file records as it is: for a query head that holds the
    /// store's small files but not its features.npy (TrakQueryHead.OpenWithoutFeatures checks the file's checksum instead).
    /// </summary>
    internal static Preconditioner LoadRecorded(string path, int dim, long rows) => LoadFile(path, dim, rows, null);

    private static Preconditioner LoadFile(string path, int dim, long rows, byte[]? featuresFingerprint)
    {
        if (!File.Exists(path))
        {
            throw new AttributionException($"{path} not found: run 'finalize' on the store first");
        }
        using var stream = File.OpenRead(path);
        Span<byte> header = stackalloc byte[64];
        if (stream.ReadAtLeast(header, header.Length, throwOnEndOfStream: false) != header.Length || FormOf(header) is not { } form)
        {
            throw new AttributionException($"{path}: not a preconditioner file (magic {FileMagic} or {DualFileMagic} expected)");
        }
        int version = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
        int k = BinaryPrimitives.ReadInt32LittleEndian(header[12..]);
        long expected = form == KernelForm.Primal ? dim : rows;
        if (version != FormatVersion || k != expected)
        {
            string what = form == KernelForm.Primal ? "dimension" : "rows (dual form)";
            throw new AttributionException($"{path}: version {version}, {what} {k}; expected version {FormatVersion}, {what} {expected}");
        }
        if (featuresFingerprint is not null && !header.Slice(32, 32).SequenceEqual(featuresFingerprint))
        {
            throw new AttributionException($"{path}: built from other features (fingerprint {Convert.ToHexString(header.Slice(32, 8))}… vs the store's " +
                $"{Convert.ToHexString(featuresFingerprint.AsSpan(0, 8))}…); run 'finalize' again");
        }
        var lower = new double[(long)k * (k + 1) / 2];
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(lower.AsSpan());
        if (stream.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false) != bytes.Length || stream.Position != stream.Length)
        {
            throw new AttributionException($"{path}: expected {64 + bytes.Length} bytes, the file has {stream.Length}");
        }
        RequireFiniteFactor(path, lower, k);
        return new Preconditioner(form, k, lower, BinaryPrimitives.ReadDoubleLittleEndian(header[24..]), BinaryPrimitives.ReadDoubleLittleEndian(header[16..]), header.Slice(32, 32).ToArray());
    }
}
