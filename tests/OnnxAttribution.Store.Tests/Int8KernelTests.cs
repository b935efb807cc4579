using System.Runtime.Intrinsics;

namespace OnnxAttribution.Store.Tests;

/// <summary>
/// The integer kernels of the 8-bit scan: exact at every width (so the widths agree bit for bit), at every length 0..256 and
/// the chunk edges, for extreme values that would overflow a 32-bit lane if chunks were not added in 64 bits.
/// </summary>
public sealed unsafe class Int8KernelTests
{
    private static IEnumerable<string> Widths()
    {
        yield return nameof(SimdWidth.Scalar);
        yield return nameof(SimdWidth.Auto);
        if (Vector128.IsHardwareAccelerated)
        {
            yield return nameof(SimdWidth.W128);
        }
        if (Vector256.IsHardwareAccelerated)
        {
            yield return nameof(SimdWidth.W256);
        }
        if (Vector512.IsHardwareAccelerated)
        {
            yield return nameof(SimdWidth.W512);
        }
    }

    private static long[] Run(SimdWidth width, sbyte[] rows, int rowCount, int dim, short[] queries, int queryCount)
    {
        var sums = new long[Math.Max(1, queryCount * rowCount)];
        fixed (sbyte* r = rows)
        fixed (short* q = queries)
        fixed (long* s = sums)
        {
            Int8Kernels.DotTile(width, r, rowCount, dim, q, queryCount, s, rowCount);
        }
        return sums;
    }

    [TestCaseSource(nameof(Widths))]
    public void DotTile_Dims1To256AndChunkEdges_EqualsTheIntegerSum(string widthName)
    {
        var width = Enum.Parse<SimdWidth>(widthName);
        var random = new Random(31);
        const int rows = 7, queries = 3;
        foreach (int dim in Enumerable.Range(1, 256).Concat([1023, 1024, 1025, 2049, 3000]))
        {
            var r = Enumerable.Range(0, rows * dim).Select(_ => (sbyte)random.Next(-127, 128)).ToArray();
            var q = Enumerable.Range(0, queries * dim).Select(_ => (short)random.Next(-32767, 32768)).ToArray();
            var sums = Run(width, r, rows, dim, q, queries);
            for (int j = 0; j < queries; j++)
            {
                for (int i = 0; i < rows; i++)
                {
                    long expected = 0;
                    for (int c = 0; c < dim; c++)
                    {
                        expected += r[(i * dim) + c] * (long)q[(j * dim) + c];
                    }
                    Assert.That(sums[(j * rows) + i], Is.EqualTo(expected), $"dim {dim}, row {i}, query {j}");
                }
            }
        }
    }

    [TestCaseSource(nameof(Widths))]
    public void DotTile_ExtremeValuesAtLargeK_NoOverflow(string widthName)
    {
        // 127 · 32767 · 10000 ≈ 4.2·10¹⁰: far beyond a 32-bit lane; the rows alternate sign so the 4-row kernel is checked too.
        const int dim = 10000, rows = 5;
        var r = Enumerable.Range(0, rows * dim).Select(i => (sbyte)(i / dim % 2 == 0 ? 127 : -127)).ToArray();
        var q = Enumerable.Repeat((short)Int8Kernels.QueryLevels, dim).ToArray();
        var sums = Run(Enum.Parse<SimdWidth>(widthName), r, rows, dim, q, 1);
        Assert.That(sums, Is.EqualTo(Enumerable.Range(0, rows).Select(i => (i % 2 == 0 ? 1L : -1L) * 127 * Int8Kernels.QueryLevels * dim)));
    }

    [Test]
    public void QuantizeQuery_WithinHalfAStep_ZeroAndNaN()
    {
        var query = Enumerable.Range(0, 500).Select(i => MathF.Sin(i) * 3).ToArray();
        var shorts = new short[query.Length];
        double step = Int8Kernels.QuantizeQuery(query, shorts);
        Assert.That(step, Is.EqualTo(query.Max(v => Math.Abs((double)v)) / Int8Kernels.QueryLevels));
        for (int j = 0; j < query.Length; j++)
        {
            Assert.That(Math.Abs(query[j] - (step * shorts[j])), Is.LessThanOrEqualTo(step * 0.5000001), $"column {j}");
        }
        Assert.That(Int8Kernels.QuantizeQuery(new float[4], shorts), Is.EqualTo(0.0));
        Assert.That(double.IsNaN(Int8Kernels.QuantizeQuery([1f, float.NaN], shorts)) || double.IsInfinity(Int8Kernels.QuantizeQuery([1f, float.NaN], shorts)),
            Is.True, "a query with NaN has no step");
    }
}
