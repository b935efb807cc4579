using OnnxAttribution.Store;

namespace OnnxAttribution.Runtime.Tests.Runtime;

/// <summary>
/// The scan on a GPU (<c>-p:OrtFlavor=cuda</c>, CUDA 13, cuDNN 9; run by tools/gpu-check.sh, never by scripts/test.sh):
/// float16 rows multiplied in float16 by cuBLAS, resident or streamed, against the SIMD scan on the CPU.
/// </summary>
[Category("Gpu")]
public class OrtStoreScanCudaTests : TempDirectoryTest
{
    private const int Dim = 256;
    private const int Top = 10;

    [TestCase(true)]
    [TestCase(false)]
    public void TopK_Float16OnCuda_AgreesWithTheSimdScan(bool resident)
    {
        using var store = StoreTestData.WriteAll(TempDir, StoreTestData.Meta(20_000, Dim, StoreDType.Float16), batch: 1000);
        var random = new Random(8);
        var queries = Enumerable.Range(0, 16 * Dim).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
        using var scan = OrtStoreScan.Open(store, new SessionSettings(ExecutionDevice.Cuda), resident, chunkBytes: 4L << 20);
        Assert.That((scan.HalfGemm, scan.Resident), Is.EqualTo((true, resident)));

        var expected = store.TopK(queries, 16, Top);
        var found = scan.TopK(queries, 16, Top);

        // float16 scores: the same best row, nearly the same top ten, each score within float16's rounding of the largest.
        int shared = Enumerable.Range(0, 16).Sum(q => found[q].Indices.Intersect(expected[q].Indices).Count());
        TestContext.Out.WriteLine($"top-{Top} agreement: {shared} of {16 * Top}");
        Assert.That(shared, Is.GreaterThanOrEqualTo(16 * Top * 9 / 10));
        for (int q = 0; q < 16; q++)
        {
            float tolerance = 2e-3f * expected[q].Scores[0];
            Assert.That(found[q].Scores[0], Is.EqualTo(expected[q].Scores[0]).Within(tolerance), $"query {q}");
        }
    }
}
