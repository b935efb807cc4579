using System.Runtime.Intrinsics;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Store.Tests;

public sealed unsafe class ScanKernelTests
{
    /// <summary>Every width this machine runs, widest first; Scalar always. (tests/run-store-fallbacks.sh reruns with fewer.)</summary>
    private static IEnumerable<string> Widths() => WidthValues().Select(w => w.ToString());

    private static SimdWidth Parse(string width) => Enum.Parse<SimdWidth>(width);

    private static IEnumerable<SimdWidth> WidthValues()
    {
        if (Vector512.IsHardwareAccelerated)
        {
            yield return SimdWidth.W512;
        }
        if (Vector256.IsHardwareAccelerated)
        {
            yield return SimdWidth.W256;
        }
        if (Vector128.IsHardwareAccelerated)
        {
            yield return SimdWidth.W128;
        }
        yield return SimdWidth.Scalar;
        yield return SimdWidth.Auto;
    }

    [TestCaseSource(nameof(Widths))]
    public void HalfToSingle_AllBitPatterns_MatchHalfCast(string widthName)
    {
        SimdWidth width = Parse(widthName);
        var source = new Half[65536];
        for (int i = 0; i < source.Length; i++)
        {
            source[i] = BitConverter.UInt16BitsToHalf((ushort)i);
        }
        var actual = new float[65536];
        HalfConversion.ToSingle(source, actual, width);
        for (int i = 0; i < source.Length; i++)
        {
            uint expected = BitConverter.SingleToUInt32Bits((float)source[i]);
            uint got = BitConverter.SingleToUInt32Bits(actual[i]);
            if (got != expected)
            {
                Assert.Fail($"half 0x{i:x4}: expected float bits 0x{expected:x8}, got 0x{got:x8}");
            }
        }
    }

    [TestCaseSource(nameof(Widths))]
    public void HalfToSingle_Lengths0To256_MatchScalarAndLeaveTheRest(string widthName)
    {
        SimdWidth width = Parse(widthName);
        var random = new Random(5);
        for (int length = 0; length <= 256; length++)
        {
            var source = new Half[length];
            for (int i = 0; i < length; i++)
            {
                source[i] = BitConverter.UInt16BitsToHalf((ushort)random.Next(65536));
            }
            var actual = new float[length + 1];
            actual[length] = 12345f;
            HalfConversion.ToSingle(source, actual, width);
            for (int i = 0; i < length; i++)
            {
                Assert.That(BitConverter.SingleToUInt32Bits(actual[i]), Is.EqualTo(BitConverter.SingleToUInt32Bits((float)source[i])), $"length {length}, element {i}");
            }
            Assert.That(actual[length], Is.EqualTo(12345f), $"length {length}: wrote past the end");
        }
    }

    [Test]
    public void HalfBitsToSingle_Specials_Exact()
    {
        Assert.Multiple(() =>
        {
            Assert.That(HalfBits.ToSingle(0x0001), Is.EqualTo(MathF.Pow(2, -24)));          // smallest subnormal
            Assert.That(HalfBits.ToSingle(0x03ff), Is.EqualTo(1023 * MathF.Pow(2, -24)));   // largest subnormal
            Assert.That(HalfBits.ToSingle(0x7bff), Is.EqualTo(65504f));
            Assert.That(HalfBits.ToSingle(0x7c00), Is.EqualTo(float.PositiveInfinity));
            Assert.That(HalfBits.ToSingle(0xfc00), Is.EqualTo(float.NegativeInfinity));
            Assert.That(float.IsNaN(HalfBits.ToSingle(0x7e00)), Is.True);
            Assert.That(BitConverter.SingleToUInt32Bits(HalfBits.ToSingle(0x8000)), Is.EqualTo(0x80000000u)); // -0
        });
    }

    /// <summary>Every dim 1..256 (all remainders at every width), plus chunk boundaries; 7 rows and 6 queries exercise every kernel.</summary>
    private static IEnumerable<TestCaseData> DimCases()
    {
        foreach (string width in Widths())
        {
            foreach (var dtype in new[] { StoreDType.Float32, StoreDType.Float16 })
            {
                yield return new TestCaseData(width, dtype);
            }
        }
    }

    [TestCaseSource(nameof(DimCases))]
    public void ScoreTile_Dims1To256AndChunkEdges_MatchDoubleReference(string widthName, StoreDType dtype)
    {
        SimdWidth width = Parse(widthName);
        const int rows = 7, queries = 6;
        var dims = Enumerable.Range(1, 256).Concat([1023, 1024, 1025, 2049, 3000]);
        var random = new Random(11);
        float* scratch = stackalloc float[ScanKernels.ScratchFloats];
        foreach (int dim in dims)
        {
            var rowValues = new float[rows * dim];
            var queryValues = new float[queries * dim];
            for (int i = 0; i < rowValues.Length; i++)
            {
                rowValues[i] = (float)((random.NextDouble() * 4) - 2);
                if (dtype == StoreDType.Float16)
                {
                    rowValues[i] = (float)(Half)rowValues[i];
                }
            }
            for (int i = 0; i < queryValues.Length; i++)
            {
                queryValues[i] = (float)((random.NextDouble() * 4) - 2);
            }
            byte[] stored = dtype == StoreDType.Float32
                ? System.Runtime.InteropServices.MemoryMarshal.AsBytes(rowValues.AsSpan()).ToArray()
                : System.Runtime.InteropServices.MemoryMarshal.AsBytes(rowValues.Select(v => (Half)v).ToArray().AsSpan()).ToArray();
            var scores = new float[queries * rows];
            fixed (byte* r = stored)
            fixed (float* q = queryValues)
            fixed (float* s = scores)
            {
                ScanKernels.ScoreTile(width, r, dtype, rows, dim, q, queries, s, rows, scratch);
            }
            for (int j = 0; j < queries; j++)
            {
                for (int i = 0; i < rows; i++)
                {
                    double exact = 0, magnitude = 0;
                    for (int c = 0; c < dim; c++)
                    {
                        exact += (double)rowValues[(i * dim) + c] * queryValues[(j * dim) + c];
                        magnitude += Math.Abs((double)rowValues[(i * dim) + c] * queryValues[(j * dim) + c]);
                    }
                    double tolerance = (magnitude * dim * 1.2e-7) + 1e-30;
                    Assert.That(scores[(j * rows) + i], Is.EqualTo(exact).Within(tolerance), $"dim {dim}, row {i}, query {j}");
                }
            }
        }
    }

    [TestCaseSource(nameof(DimCases))]
    public void ScoreTile_QueryCount_DoesNotChangeAnyScoreBit(string widthName, StoreDType dtype)
    {
        // 9 rows: two 4-row blocks and a tail row; 1100 columns: a full chunk and one with a remainder. One to three queries
        // take float16 rows through the in-register path, four or more through scratch: the bits must not differ.
        SimdWidth width = Parse(widthName);
        const int rows = 9, dim = 1100, queries = 7;
        var random = new Random(3);
        var rowValues = Enumerable.Range(0, rows * dim).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
        var queryValues = Enumerable.Range(0, queries * dim).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
        byte[] stored = dtype == StoreDType.Float32
            ? System.Runtime.InteropServices.MemoryMarshal.AsBytes(rowValues.AsSpan()).ToArray()
            : System.Runtime.InteropServices.MemoryMarshal.AsBytes(rowValues.Select(v => (Half)v).ToArray().AsSpan()).ToArray();
        float* scratch = stackalloc float[ScanKernels.ScratchFloats];
        var all = new float[queries * rows];
        fixed (byte* r = stored)
        fixed (float* q = queryValues)
        fixed (float* s = all)
        {
            ScanKernels.ScoreTile(width, r, dtype, rows, dim, q, queries, s, rows, scratch);
            foreach (int count in new[] { 1, 2, 3, 4 })
            {
                for (int j = 0; j + count <= queries; j += count)
                {
                    var some = new float[count * rows];
                    fixed (float* s1 = some)
                    {
                        ScanKernels.ScoreTile(width, r, dtype, rows, dim, q + (j * dim), count, s1, rows, scratch);
                    }
                    Assert.That(some, Is.EqualTo(all.Skip(j * rows).Take(count * rows).ToArray()), $"queries {j}..{j + count - 1} of {count}");
                }
            }
        }
    }
}
