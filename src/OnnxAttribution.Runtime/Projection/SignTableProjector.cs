using System.Buffers.Binary;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace OnnxAttribution.Runtime.Projection;

/// <summary>
/// The Rademacher projection of a <see cref="DenseProjector"/>, one gradient at a time: P's signs are generated once and kept
/// as bits, and y = Pᵀg is evaluated through lookup tables instead of one sign flip per entry.
/// </summary>
/// <remarks>
/// <para>Why: <see cref="DenseProjector"/> generates P on every call, which a batch of training rows shares but a lone query pays
/// for alone (about 100 ms at p = 300,000, k = 2048 on two cores); even shared by 16 rows it costs ~4× what the tables do
/// (QueryProjectionBenchmarks and DenseProjectorBenchmarks). Here the rows of P are taken eight at a time; the eight sign
/// bits of column j form one byte, kept in a cache of ⌈p/8⌉·k bytes (p·k/8: 75 MB for the shipped model at k = 2048). For
/// each group of eight gradient values x₀…x₇ (already scaled by s = 1/√k), two tables hold every signed sum of four of them,
/// L[m] = Σᵢ₌₀³ (−1)^{bit i of m} xᵢ and H[m] likewise for x₄…x₇; then y[j] += L[byte &amp; 15] + H[byte ≫ 4]. With AVX-512 a
/// table is one register and a lookup is one permute, so 16 columns × 8 rows cost about seven instructions.</para>
/// <para>Numerics: the same P as the dense projector, summed in another order (per group of four rows first), so y agrees
/// with <see cref="DenseProjector.Project"/> to float32 rounding (a relative 10⁻⁶ of Σ|xᵣ|), not bit for bit. Within this
/// class the result is bit-identical whatever the thread count or SIMD width: every path adds the same values in the same
/// order per column.</para>
/// <para>The instance is immutable after construction and thread-safe.</para>
/// </remarks>
public sealed class SignTableProjector
{
    /// <summary>Columns per tile: eight AVX-512 accumulators.</summary>
    private const int TileWidth = 128;

    private readonly byte[] _signs;
    private readonly int _rows;
    private readonly int _blocks;
    private readonly int _kPad;
    private readonly int _maxDegreeOfParallelism;

    /// <summary>Generates and keeps the signs of <paramref name="projector"/>'s P.</summary>
    /// <param name="projector">A Rademacher dense projector.</param>
    /// <param name="maxDegreeOfParallelism">Threads per call; −1 for all cores. Changes speed only, never the result.</param>
    /// <exception cref="ArgumentException">The projector is Gaussian, or its sign cache would not fit in one array.</exception>
    public SignTableProjector(DenseProjector projector, int maxDegreeOfParallelism = -1)
    {
        ArgumentNullException.ThrowIfNull(projector);
        if (projector.Kind != ProjectionKind.Rademacher)
        {
            throw new ArgumentException($"Sign tables need a Rademacher projection, not {projector.Kind}.", nameof(projector));
        }
        if (maxDegreeOfParallelism == 0 || maxDegreeOfParallelism < -1)
        {
            throw new ArgumentOutOfRangeException(nameof(maxDegreeOfParallelism), maxDegreeOfParallelism, "Expected −1 or a positive thread count.");
        }
        long bytes = CacheBytesFor(projector.InputDim, projector.OutputDim);
        if (bytes > Array.MaxLength)
        {
            throw new ArgumentException($"The sign cache of a {projector.InputDim} × {projector.OutputDim} projection needs {bytes} bytes, more than one array holds.", nameof(projector));
        }
        Source = projector;
        _rows = checked((int)projector.InputDim);
        _blocks = (_rows + 7) / 8;
        _kPad = Pad(projector.OutputDim);
        _maxDegreeOfParallelism = maxDegreeOfParallelism == -1 ? Environment.ProcessorCount : maxDegreeOfParallelism;
        _signs = GC.AllocateUninitializedArray<byte>((int)bytes);
        Parallel.For(0, _blocks, new ParallelOptions { MaxDegreeOfParallelism = _maxDegreeOfParallelism }, FillBlock);
    }

    private static readonly Dictionary<(long InputDim, int OutputDim, ulong Seed), WeakReference<SignTableProjector>> Cache = [];

    /// <summary>
    /// The sign tables of <paramref name="projector"/>'s P, shared by every caller that asks while one is alive: extractors of the
    /// same projection with other plans (Journey-TRAK's per-timestep stores) keep one cache between them, not one each.
    /// </summary>
    public static SignTableProjector Shared(DenseProjector projector)
    {
        ArgumentNullException.ThrowIfNull(projector);
        var key = (projector.InputDim, projector.OutputDim, projector.Seed);
        lock (Cache)
        {
            if (projector.Kind == ProjectionKind.Rademacher && Cache.TryGetValue(key, out var weak) && weak.TryGetTarget(out var alive))
            {
                return alive;
            }
            var created = new SignTableProjector(projector);
            Cache[key] = new WeakReference<SignTableProjector>(created);
            return created;
        }
    }

    /// <summary>The projector whose P this evaluates.</summary>
    public DenseProjector Source { get; }

    /// <summary>Tests turn the AVX-512 tiles off to compare them with the portable loop in one process.</summary>
    internal bool UseVectorTiles { get; set; } = true;

    /// <summary>The bytes the sign cache holds.</summary>
    public long CacheBytes => _signs.LongLength;

    /// <summary>The bytes the sign cache of a p × k projection takes: ⌈p/8⌉ · k rounded up to a multiple of 16.</summary>
    public static long CacheBytesFor(long inputDim, int outputDim) => (inputDim + 7) / 8 * Pad(outputDim);

    /// <summary>y = Pᵀg, equal to <see cref="DenseProjector.Project"/> up to float32 rounding.</summary>
    /// <param name="gradient">p values.</param>
    /// <param name="destination">k values, overwritten.</param>
    /// <exception cref="ArgumentException">A length differs from p or k.</exception>
    public void Project(ReadOnlySpan<float> gradient, Span<float> destination)
    {
        if (gradient.Length != _rows || destination.Length != Source.OutputDim)
        {
            throw new ArgumentException($"Expected {_rows} gradient values and {Source.OutputDim} destination values, found {gradient.Length} and {destination.Length}.");
        }
        // Pooled: a query's tables are megabytes (32 floats per eight rows), which would otherwise land on the large-object heap each time.
        var tables = System.Buffers.ArrayPool<float>.Shared.Rent(_blocks * 32);
        var acc = System.Buffers.ArrayPool<float>.Shared.Rent(_kPad);
        try
        {
            BuildTables(gradient, Source.Scale, tables);
            Array.Clear(acc, 0, _kPad);
            int tiles = (_kPad + TileWidth - 1) / TileWidth;
            int parts = Math.Min(tiles, _maxDegreeOfParallelism);
            if (parts <= 1)
            {
                for (int t = 0; t < tiles; t++)
                {
                    RunTile(t, tables, acc);
                }
            }
            else
            {
                Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, part =>
                {
                    for (int t = tiles * part / parts; t < tiles * (part + 1) / parts; t++)
                    {
                        RunTile(t, tables, acc);
                    }
                });
            }
            acc.AsSpan(0, destination.Length).CopyTo(destination);
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(tables);
            System.Buffers.ArrayPool<float>.Shared.Return(acc);
        }
    }

    private static int Pad(int k) => checked((k + ProjectionKernels.ColumnAlignment - 1) / ProjectionKernels.ColumnAlignment * ProjectionKernels.ColumnAlignment);

    /// <summary>Where tile t's bytes start and how many columns it has. Every tile but the last is <see cref="TileWidth"/> wide.</summary>
    private (int Offset, int Width) Tile(int t) => (t * TileWidth * _blocks, Math.Min(TileWidth, _kPad - t * TileWidth));

    /// <summary>
    /// The bytes of one group of eight rows: bit i of the byte for column j is set when P[8b + i, j] is negative. Rows past p
    /// have no bits. The eight rows' words are transposed eight columns at a time as an 8 × 8 bit matrix.
    /// </summary>
    private void FillBlock(int block)
    {
        int words = (_kPad + 31) / 32;
        Span<uint> rowWords = 8 * words <= 4096 ? stackalloc uint[8 * words] : new uint[8 * words];
        rowWords.Clear();
        for (int i = 0; i < 8 && block * 8 + i < _rows; i++)
        {
            ProjectionRowRng.CreateUnchecked(Source.Seed, 0, block * 8 + i).FillWords(0, rowWords.Slice(i * words, words));
        }
        for (int c = 0; c < _kPad; c += 8)
        {
            // Byte i of x: row i's signs of columns c … c+7 (bit l for column c+l).
            ulong x = 0;
            for (int i = 0; i < 8; i++)
            {
                x |= (ulong)((rowWords[i * words + (c >> 5)] >> (c & 31)) & 0xFF) << (8 * i);
            }
            var (offset, width) = Tile(c / TileWidth);
            BinaryPrimitives.WriteUInt64LittleEndian(_signs.AsSpan(offset + block * width + c % TileWidth, 8), Transpose8(x));
        }
    }

    /// <summary>Transposes an 8 × 8 bit matrix held as bytes (bit l of byte i ↦ bit i of byte l).</summary>
    internal static ulong Transpose8(ulong x)
    {
        ulong t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AAUL;
        x ^= t ^ (t << 7);
        t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCCUL;
        x ^= t ^ (t << 14);
        t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0UL;
        return x ^ t ^ (t << 28);
    }

    /// <summary>
    /// For each group of eight rows, the 16 signed sums of its first four and of its last four scaled values:
    /// tables[32b + m] = ((v₀ + v₁) + v₂) + v₃ with vᵢ = ±s·g[8b + i], negative where bit i of m is set; tables[32b + 16 + m] the same for rows 4…7.
    /// </summary>
    private void BuildTables(ReadOnlySpan<float> gradient, float scale, float[] tables)
    {
        Span<float> x = stackalloc float[8];
        int vectorBlocks = UseVectorTiles && Vector512.IsHardwareAccelerated ? _rows / 8 : 0;
        if (vectorBlocks > 0)
        {
            BuildTables512(gradient, scale, tables, vectorBlocks);
        }
        for (int b = vectorBlocks; b < _blocks; b++)
        {
            for (int i = 0; i < 8; i++)
            {
                int r = b * 8 + i;
                x[i] = r < _rows ? scale * gradient[r] : 0f;
            }
            for (int half = 0; half < 2; half++)
            {
                var v = x.Slice(4 * half, 4);
                for (int m = 0; m < 16; m++)
                {
                    float sum = Signed(v[0], m, 0) + Signed(v[1], m, 1);
                    sum += Signed(v[2], m, 2);
                    tables[32 * b + 16 * half + m] = sum + Signed(v[3], m, 3);
                }
            }
        }
    }

    /// <summary>The tables of whole groups, lane m of a vector being entry m: the same sums, in the same order, as the scalar loop.</summary>
    private static unsafe void BuildTables512(ReadOnlySpan<float> gradient, float scale, float[] tables, int blocks)
    {
        var lane = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        var signs = new Vector512<float>[4];
        for (int i = 0; i < 4; i++)
        {
            signs[i] = Vector512.ShiftLeft(Vector512.ShiftRightLogical(lane, i) & Vector512<int>.One, 31).AsSingle();
        }
        var (s0, s1, s2, s3) = (signs[0], signs[1], signs[2], signs[3]);
        fixed (float* g = gradient)
        fixed (float* t = tables)
        {
            for (int b = 0; b < blocks; b++)
            {
                float* x = g + 8 * b;
                float* table = t + 32 * b;
                for (int half = 0; half < 2; half++, x += 4)
                {
                    var sum = (Vector512.Create(scale * x[0]) ^ s0) + (Vector512.Create(scale * x[1]) ^ s1);
                    sum += Vector512.Create(scale * x[2]) ^ s2;
                    (sum + (Vector512.Create(scale * x[3]) ^ s3)).Store(table + 16 * half);
                }
            }
        }
    }

    private static float Signed(float value, int m, int bit) => ((m >> bit) & 1) != 0 ? -value : value;

    private void RunTile(int tile, float[] tables, float[] acc)
    {
        var (offset, width) = Tile(tile);
        int column = tile * TileWidth;
        if (UseVectorTiles && Avx512F.IsSupported && width == TileWidth)
        {
            RunFullTile512(offset, tables, acc.AsSpan(column, TileWidth));
            return;
        }
        // Any width, any hardware: the same additions per column in the same order.
        var signs = _signs.AsSpan(offset, _blocks * width);
        var sums = acc.AsSpan(column, width);
        for (int b = 0; b < _blocks; b++)
        {
            var low = tables.AsSpan(32 * b, 16);
            var high = tables.AsSpan(32 * b + 16, 16);
            var bytes = signs.Slice(b * width, width);
            for (int j = 0; j < width; j++)
            {
                sums[j] += low[bytes[j] & 15];
                sums[j] += high[bytes[j] >> 4];
            }
        }
    }

    /// <summary>A whole 128-column tile with eight register accumulators; a permute looks each column's sum up in a table register.</summary>
    private unsafe void RunFullTile512(int offset, float[] tables, Span<float> sums)
    {
        var a0 = Vector512<float>.Zero;
        var a1 = a0;
        var a2 = a0;
        var a3 = a0;
        var a4 = a0;
        var a5 = a0;
        var a6 = a0;
        var a7 = a0;
        var nibble = Vector512.Create(15);
        fixed (byte* signs = &_signs[offset])
        fixed (float* t = tables)
        {
            byte* s = signs;
            for (int b = 0; b < _blocks; b++, s += TileWidth)
            {
                var low = Vector512.Load(t + 32 * b);
                var high = Vector512.Load(t + 32 * b + 16);
                a0 = Lookup(a0, low, high, s, nibble);
                a1 = Lookup(a1, low, high, s + 16, nibble);
                a2 = Lookup(a2, low, high, s + 32, nibble);
                a3 = Lookup(a3, low, high, s + 48, nibble);
                a4 = Lookup(a4, low, high, s + 64, nibble);
                a5 = Lookup(a5, low, high, s + 80, nibble);
                a6 = Lookup(a6, low, high, s + 96, nibble);
                a7 = Lookup(a7, low, high, s + 112, nibble);
            }
        }
        Span<Vector512<float>> all = [a0, a1, a2, a3, a4, a5, a6, a7];
        for (int v = 0; v < 8; v++)
        {
            all[v].CopyTo(sums.Slice(16 * v, 16));
        }
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector512<float> Lookup(Vector512<float> acc, Vector512<float> low, Vector512<float> high, byte* bytes, Vector512<int> nibble)
    {
        var index = Avx512F.ConvertToVector512Int32(Vector128.Load(bytes)).AsInt32();
        acc += Avx512F.PermuteVar16x32(low, index & nibble);
        return acc + Avx512F.PermuteVar16x32(high, Vector512.ShiftRightLogical(index, 4));
    }
}
