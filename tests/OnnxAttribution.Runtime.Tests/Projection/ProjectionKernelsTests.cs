using System.Runtime.Intrinsics;
using OnnxAttribution.Runtime.Projection;

namespace OnnxAttribution.Runtime.Tests.Projection;

public sealed unsafe class ProjectionKernelsTests
{
    [OneTimeSetUp]
    public void ReportPath() =>
        TestContext.Progress.WriteLine(
            $"Projection kernels run at: {(Vector512.IsHardwareAccelerated ? "Vector512" : Vector256.IsHardwareAccelerated ? "Vector256" : Vector128.IsHardwareAccelerated ? "Vector128" : "scalar")}");

    // The kernel takes column counts that are multiples of 16 (callers pad); every such count 0..256 is tested, with
    // 0..9 rows (4-row tiles plus every remainder) and depths covering 0, 1 and odd lengths.
    [Test]
    public void AccumulateMultiplyAdd_EveryColumnCount0To256_MatchesScalarBitForBit() => CheckAgainstScalar<MultiplyAdd>(signs: false);

    [Test]
    public void AccumulateSignFlipAdd_EveryColumnCount0To256_MatchesScalarBitForBit() => CheckAgainstScalar<SignFlipAdd>(signs: true);

    private static void CheckAgainstScalar<TOp>(bool signs) where TOp : IAccumulateOp
    {
        var random = new Random(1234);
        foreach (int depth in new[] { 0, 1, 5, 33 })
        {
            for (int columns = 0; columns <= 256; columns += ProjectionKernels.ColumnAlignment)
            {
                for (int rows = 0; rows <= 9; rows++)
                {
                    int xStride = depth + 3, pStride = columns + 16, accStride = columns + 32;
                    var x = RandomArray(random, Math.Max(1, rows * xStride));
                    var p = RandomArray(random, Math.Max(1, depth * pStride));
                    if (signs)
                    {
                        for (int i = 0; i < p.Length; i++)
                        {
                            p[i] = random.Next(2) == 0 ? 0f : -0f;
                        }
                    }
                    var acc = RandomArray(random, Math.Max(1, rows * accStride));
                    var expected = (float[])acc.Clone();
                    fixed (float* px = x, pp = p, pa = acc, pe = expected)
                    {
                        ProjectionKernels.Accumulate<TOp>(px, xStride, rows, depth, pp, pStride, columns, pa, accStride);
                        ProjectionKernels.AccumulateScalar<TOp>(px, xStride, rows, depth, pp, pStride, columns, pe, accStride);
                    }
                    for (int i = 0; i < acc.Length; i++)
                    {
                        if (BitConverter.SingleToUInt32Bits(acc[i]) != BitConverter.SingleToUInt32Bits(expected[i]))
                        {
                            Assert.Fail($"depth {depth}, columns {columns}, rows {rows}, index {i}: {acc[i]:R} vs {expected[i]:R}");
                        }
                    }
                }
            }
        }
    }

    [Test]
    public void AccumulateScalar_RandomProduct_MatchesFloat64ReferenceWithinRounding()
    {
        // The scalar path is the reference for the vector paths; check it once against a float64 product.
        var random = new Random(5);
        const int rows = 3, depth = 50, columns = 32;
        var x = RandomArray(random, rows * depth);
        var p = RandomArray(random, depth * columns);
        var acc = new float[rows * columns];
        fixed (float* px = x, pp = p, pa = acc)
        {
            ProjectionKernels.AccumulateScalar<MultiplyAdd>(px, depth, rows, depth, pp, columns, columns, pa, columns);
        }
        for (int b = 0; b < rows; b++)
        {
            for (int j = 0; j < columns; j++)
            {
                double sum = 0, scale = 0;
                for (int i = 0; i < depth; i++)
                {
                    sum += (double)x[b * depth + i] * p[i * columns + j];
                    scale += Math.Abs((double)x[b * depth + i] * p[i * columns + j]);
                }
                Assert.That(acc[b * columns + j], Is.EqualTo(sum).Within(depth * 6e-8 * scale));
            }
        }
    }

    private static float[] RandomArray(Random random, int length)
    {
        var a = new float[length];
        for (int i = 0; i < length; i++)
        {
            a[i] = (float)(random.NextDouble() * 2 - 1);
        }
        return a;
    }
}
