namespace OnnxAttribution.Store;

/// <summary>
/// The 8-bit copy of a store's rows, mapped: <see cref="StoreFiles.QuantizedFeatures"/> (int8 N×k) and its per-row scales
/// <see cref="StoreFiles.QuantizedScales"/> (float32 N×1, read into memory: 4 bytes a row). Row i stands for x̂ᵢ = sᵢ·qᵢ with
/// symmetric per-row quantisation sᵢ = max|xᵢ| / 127, qᵢⱼ = round(xᵢⱼ / sᵢ).
/// </summary>
/// <remarks>
/// <para>The error bound the exact re-rank relies on (<see cref="ScoreBound"/>). The scan quantises the query too, to int16:
/// q ≈ t·q̂ with |qⱼ − t·q̂ⱼ| ≤ t/2 (<see cref="Int8Kernels.QuantizeQuery"/>), and sums Iᵢ = Σⱼ q̂ⱼ·cᵢⱼ exactly in integers
/// (<see cref="Int8Kernels"/>); Aᵢ = t·sᵢ·Iᵢ in double. The exact kernel's float32 score Sᵢ differs from it by at most
/// ‖q‖₁·sᵢ·(½ + 2⁻³⁰) (the rows' quantisation: |xᵢⱼ − sᵢcᵢⱼ| ≤ sᵢ/2, the quotient rounded in double)
/// + (t/2)·sᵢ·Σⱼ|cᵢⱼ| ≤ (t/2)·sᵢ·127·n (the query's quantisation)
/// + γₙ·Σⱼ|qⱼxᵢⱼ| ≤ γₙ·127·sᵢ·(1 + 2⁻²³)·‖q‖₁, the float32 rounding of the exact kernel with γₙ = n·2⁻²⁴/(1 − n·2⁻²⁴) for
/// n = k terms in any summation order (Higham, Accuracy and Stability of Numerical Algorithms, §3.1)
/// + n·2⁻¹⁴⁹ for products that underflow. The bound is computed in double and widened by 2⁻²⁰ relative and by 2⁻⁵⁰ of
/// |Aᵢ| + bound for the double rounding of Aᵢ and of the bound itself.</para>
/// <para>A row the rule cannot bound gets a NaN scale and is always re-ranked exactly: a row holding NaN or ±Infinity, or one
/// whose scale would be subnormal (its quotients would no longer be within ½ of an integer ≤ 127).</para>
/// <para><see cref="Data"/> points into the mapping and is valid until <see cref="Dispose"/>.</para>
/// </remarks>
internal sealed unsafe class QuantizedRows : IDisposable
{
    private readonly ReadOnlyMapping _mapping;

    private QuantizedRows(ReadOnlyMapping mapping, sbyte* data, float[] scales)
    {
        _mapping = mapping;
        Data = data;
        Scales = scales;
    }

    /// <summary>Row-major int8 rows of the copy (local row i at <c>Data + i·k</c>).</summary>
    public sbyte* Data { get; private set; }

    /// <summary>sᵢ per local row; 0 for an all-zero row (a removed one), NaN for a row the rule cannot bound.</summary>
    public float[] Scales { get; }

    /// <summary>Maps the copy in <paramref name="directory"/>; null when the store has none.</summary>
    /// <exception cref="StoreFormatException">One of the two files without the other, or a file whose shape or dtype is not
    /// that of the store's rows.</exception>
    public static QuantizedRows? TryOpen(string directory, NpyHeader features)
    {
        string rowsPath = Path.Combine(directory, StoreFiles.QuantizedFeatures);
        string scalesPath = Path.Combine(directory, StoreFiles.QuantizedScales);
        bool hasRows = File.Exists(rowsPath), hasScales = File.Exists(scalesPath);
        if (!hasRows && !hasScales)
        {
            return null;
        }
        if (hasRows != hasScales)
        {
            throw new StoreFormatException($"{(hasRows ? scalesPath : rowsPath)}: missing, but {(hasRows ? rowsPath : scalesPath)} is there: the 8-bit copy is " +
                $"incomplete; run 'quantize --store {directory}' again, or delete {StoreFiles.QuantizedFeatures} to query the exact rows only");
        }
        var header = NpyFormat.ReadHeader(rowsPath);
        Expect(rowsPath, header, StoreDType.Int8, features.Rows, features.Columns);
        var (scaleHeader, scales) = NpyFormat.ReadMatrix(scalesPath);
        Expect(scalesPath, scaleHeader, StoreDType.Float32, features.Rows, 1);
        var mapping = ReadOnlyMapping.Open(rowsPath, "the 8-bit rows");
        return new QuantizedRows(mapping, (sbyte*)(mapping.Start + header.DataOffset), scales);
    }

    private static void Expect(string path, NpyHeader header, StoreDType dtype, long rows, long columns)
    {
        if (header.DType != dtype || header.Rows != rows || header.Columns != columns)
        {
            throw new StoreFormatException($"{path}: field 'shape'/'descr': expected ({rows}, {columns}) '{dtype.NpyDescr()}' to match features.npy, " +
                $"found ({header.Rows}, {header.Columns}) '{header.DType.NpyDescr()}'; run 'quantize' again");
        }
    }

    /// <summary>Quantises one row: <paramref name="destination"/>[j] = round(row[j] / s) and s returned (0 for a zero row, NaN for a row
    /// the rule cannot bound, whose bytes are then zero).</summary>
    public static float Quantize(ReadOnlySpan<float> row, Span<sbyte> destination)
    {
        float max = 0;
        foreach (float v in row)
        {
            // NaN fails every comparison: caught by the finiteness test below.
            max = Math.Abs(v) > max || float.IsNaN(v) ? Math.Abs(v) : max;
        }
        float scale = max / 127f;
        if (max == 0 || !float.IsFinite(max) || !float.IsNormal(scale))
        {
            destination[..row.Length].Clear();
            return max == 0 ? 0f : float.NaN;
        }
        double inverse = scale;
        for (int j = 0; j < row.Length; j++)
        {
            destination[j] = (sbyte)Math.Clamp(Math.Round(row[j] / inverse, MidpointRounding.ToEven), -127, 127);
        }
        return scale;
    }

    /// <summary>
    /// The factor c of the bound |Sᵢ − Aᵢ| ≤ c·sᵢ + n·2⁻¹⁴⁹ for a query of absolute sum <paramref name="queryL1"/> (computed in
    /// double) quantised with step <paramref name="queryStep"/> (<see cref="Int8Kernels.QuantizeQuery"/>); +∞ when the query is
    /// not finite or k is too large for the rounding bound.
    /// </summary>
    public static double BoundFactor(double queryL1, double queryStep, int dim)
    {
        const double u = 1.0 / (1 << 24);
        double nu = dim * u;
        if (!double.IsFinite(queryL1) || !double.IsFinite(queryStep) || nu >= 0.5)
        {
            return double.PositiveInfinity;
        }
        double gamma = nu / (1 - nu);
        double rows = queryL1 * (0.5 + Math.ScaleB(1, -30) + (127 * gamma * (1 + Math.ScaleB(1, -22))));
        double query = queryStep * (0.5 + Math.ScaleB(1, -40)) * 127 * dim;
        return (rows + query) * (1 + Math.ScaleB(1, -20));
    }

    /// <summary>
    /// [lower, upper] holding the exact kernel's score of a row of scale <paramref name="scale"/> whose integer sum with the
    /// quantised query is <paramref name="sum"/>, for a query of step <paramref name="queryStep"/> and <see cref="BoundFactor"/>
    /// <paramref name="factor"/>; (−∞, +∞) when the row cannot be bounded (NaN scale, or magnitudes near float32 overflow).
    /// </summary>
    public static (double Lower, double Upper) ScoreBound(long sum, float scale, double queryStep, double factor, int dim)
    {
        double bound = factor * scale;
        // The exact kernel's partial sums stay below ‖q‖₁·max|x| ≤ 254·c·s; far from float32 overflow here, so no infinities.
        if (!(bound < 1e35))
        {
            return (double.NegativeInfinity, double.PositiveInfinity);
        }
        double center = queryStep * scale * sum;
        bound += dim * Math.ScaleB(1, -149);
        bound += (Math.Abs(center) + bound) * Math.ScaleB(1, -50);
        return (center - bound, center + bound);
    }

    /// <summary>Unmaps the file; <see cref="Data"/> is invalid afterwards.</summary>
    public void Dispose()
    {
        if (Data == null)
        {
            return;
        }
        Data = null;
        _mapping.Dispose();
    }
}
