using OnnxAttribution.Primitives;
using OnnxAttribution.Store;

namespace OnnxAttribution.Runtime.Tests.Runtime;

/// <summary>
/// The ONNX Runtime scan (Gemm + TopK per chunk, merged on the host) against the SIMD scan of the same store, on the CPU
/// provider: the same code the CUDA path runs, with the rows resident in ONNX Runtime's memory or read in place.
/// </summary>
public class OrtStoreScanTests : TempDirectoryTest
{
    private const int Dim = 48;

    private static float[] Queries(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count * Dim).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
    }

    [TestCase(StoreDType.Float32, false, false)]
    [TestCase(StoreDType.Float32, true, false)]
    [TestCase(StoreDType.Float16, false, false)]
    [TestCase(StoreDType.Float16, true, false)]
    [TestCase(StoreDType.Float16, false, true)]
    [TestCase(StoreDType.Float16, true, true)]
    public void TopK_ManyChunks_SameRowsAsTheSimdScan_ScoresWithinFloat32Rounding(StoreDType dtype, bool resident, bool halfGemm)
    {
        using var store = StoreTestData.WriteAll(TempDir, StoreTestData.Meta(1000, Dim, dtype), batch: 100);
        var queries = Queries(3, 11);
        // 77 rows a chunk: 13 chunks, the last one short, so candidates from many chunks are merged.
        using var scan = OrtStoreScan.Open(store, SessionSettings.Default, resident, halfGemm, chunkBytes: 77L * Dim * dtype.ElementSize());
        Assert.That(scan.HalfGemm, Is.EqualTo(halfGemm));
        Assert.That(scan.Chunks, Is.EqualTo(13));
        Assert.That(scan.Resident, Is.EqualTo(resident));

        var expected = store.TopK(queries, 3, 25);
        var found = scan.TopK(queries, 3, 25);

        Assert.That(found, Has.Length.EqualTo(3));
        for (int q = 0; q < 3; q++)
        {
            Assert.That(found[q].Indices, Is.EqualTo(expected[q].Indices), $"query {q}");
            for (int j = 0; j < 25; j++)
            {
                Assert.That(found[q].Scores[j], Is.EqualTo(expected[q].Scores[j]).Within(1e-5f * Dim), $"query {q}, rank {j}");
            }
            Assert.That(found[q].Scores, Is.Ordered.Descending);
        }
    }

    /// <summary>
    /// The half-precision graph end to end: the queries are scaled by a power of two before the graph and its scores unscaled
    /// after (the CPU provider folds the float16 casts away and multiplies in float32, so this checks the unscaling).
    /// </summary>
    [TestCase(1e6f)]
    [TestCase(1e-9f)]
    public void TopK_HalfGemm_QueriesOutsideFloat16Range_ScaledAndUnscaled(float magnitude)
    {
        using var store = StoreTestData.WriteAll(TempDir, StoreTestData.Meta(200, Dim, StoreDType.Float16), batch: 50);
        var queries = Queries(2, 21).Select(v => v * magnitude).ToArray();
        using var scan = OrtStoreScan.Open(store, SessionSettings.Default, halfGemm: true, chunkBytes: 64L * Dim * 2);

        var found = scan.TopK(queries, 2, 10);

        var expected = store.TopK(queries, 2, 10);
        for (int q = 0; q < 2; q++)
        {
            Assert.That(found[q].Indices, Is.EqualTo(expected[q].Indices), $"query {q}");
            Assert.That(found[q].Scores, Is.EqualTo(expected[q].Scores).Within(1e-3).Percent, $"query {q}");
        }
    }

    /// <summary>
    /// The scaling that keeps float16 scores in range: every score bound ‖row‖·‖query‖ lands in (1/2, 1], the scaled queries
    /// stay finite and non-zero in float16 (unscaled, 1e6 would be infinite there and 1e-9 zero), and unscaling is exact.
    /// </summary>
    [TestCase(1e6f)]
    [TestCase(1e-9f)]
    [TestCase(1f)]
    public void ScaleQueries_BoundsEveryScoreByOne_ExactlyReversible(float magnitude)
    {
        using var store = StoreTestData.WriteAll(TempDir, StoreTestData.Meta(50, Dim, StoreDType.Float16));
        float maxNorm = OrtStoreScan.MaxRowNorm(store);
        var original = Queries(3, 4).Select(v => v * magnitude).ToArray();
        var scaled = original.ToArray();
        var exponents = new int[3];

        OrtStoreScan.ScaleQueries(scaled, 3, Dim, maxNorm, exponents);

        for (int q = 0; q < 3; q++)
        {
            var row = scaled.AsSpan(q * Dim, Dim);
            float bound = maxNorm * System.Numerics.Tensors.TensorPrimitives.Norm(row);
            Assert.That(bound, Is.GreaterThan(0.5f).And.LessThanOrEqualTo(1f), $"query {q}");
            Assert.That(row.ToArray().Select(v => (float)(Half)v), Is.All.Not.EqualTo(0f).And.All.Matches<float>(float.IsFinite));
            for (int i = 0; i < Dim; i++)
            {
                Assert.That(MathF.ScaleB(row[i], exponents[q]), Is.EqualTo(original[(q * Dim) + i]));
            }
        }
        Assert.That(magnitude == 1f || exponents.All(e => e != 0), Is.True, "a query far from 1 is scaled");
    }

    [Test]
    public void TopK_ShardOfAStore_ReturnsDatasetRowIndices()
    {
        var shard = new ShardSpec(2, 3);
        using var store = StoreTestData.WriteAll(TempDir, StoreTestData.Meta(300, Dim, shard: shard), batch: 50);
        Assert.That(store.FirstRow, Is.GreaterThan(0), "the fixture is a shard that does not start at row 0");
        var queries = Queries(2, 5);
        using var scan = OrtStoreScan.Open(store, SessionSettings.Default, chunkBytes: 30L * Dim * 4);

        var found = scan.TopK(queries, 2, 7);

        var expected = store.TopK(queries, 2, 7);
        Assert.That(found.Select(r => r.Indices), Is.EqualTo(expected.Select(r => r.Indices)));
        Assert.That(found.SelectMany(r => r.Indices), Is.All.InRange(store.FirstRow, store.FirstRow + store.Rows - 1));
    }

    [Test]
    public void TopK_EqualScoresAcrossChunks_LowerRowFirst()
    {
        var meta = StoreTestData.Meta(40, Dim);
        using (var writer = FeatureStoreWriter.Create(TempDir, meta))
        {
            // Every row the same: every score ties, and the order must be the row order, whatever chunk a row is in.
            var row = StoreTestData.Row(0, Dim);
            writer.WriteRows(0, 40, Enumerable.Range(0, 40).SelectMany(_ => row).ToArray());
            writer.Complete().Dispose();
        }
        using var store = FeatureStore.Open(TempDir);
        using var scan = OrtStoreScan.Open(store, SessionSettings.Default, resident: true, chunkBytes: 9L * Dim * 4);

        var found = scan.TopK(Queries(1, 3), 1, 12);

        Assert.That(found[0].Indices, Is.EqualTo(Enumerable.Range(0, 12).Select(i => (long)i)));
    }

    [Test]
    public void TopK_MoreThanTheStoreHolds_EveryRowOnce_AndZeroGivesNone()
    {
        using var store = StoreTestData.WriteAll(TempDir, StoreTestData.Meta(20, Dim));
        using var scan = OrtStoreScan.Open(store, SessionSettings.Default, chunkBytes: 6L * Dim * 4);
        var queries = Queries(2, 9);

        var all = scan.TopK(queries, 2, 50);
        var none = scan.TopK(queries, 2, 0);

        Assert.That(all[1].Indices, Is.EquivalentTo(Enumerable.Range(0, 20).Select(i => (long)i)));
        Assert.That(all[1].Indices, Is.EqualTo(store.TopK(queries, 2, 50)[1].Indices));
        Assert.That(none.Select(r => r.Count), Is.All.EqualTo(0));
    }

    [Test]
    public void TopK_WrongQueryLength_NamesTheExpectedShape()
    {
        using var store = StoreTestData.WriteAll(TempDir, StoreTestData.Meta(10, Dim));
        using var scan = OrtStoreScan.Open(store, SessionSettings.Default);

        var e = Assert.Throws<ArgumentException>(() => scan.TopK(new float[Dim + 1], 1, 3));

        Assert.That(e!.Message, Does.Contain($"1 × {Dim}"));
    }

    [Test]
    public void ScanGraph_HalfGemm_CastsTheQueriesNotTheRows()
    {
        var half = OrtStoreScan.ScanGraph(StoreDType.Float16, Dim, halfGemm: true).Graph.Node.Select(n => n.OpType).ToList();
        var cast = OrtStoreScan.ScanGraph(StoreDType.Float16, Dim, halfGemm: false).Graph.Node.Select(n => n.OpType).ToList();
        var single = OrtStoreScan.ScanGraph(StoreDType.Float32, Dim, halfGemm: false).Graph.Node.Select(n => n.OpType).ToList();

        Assert.That(half, Is.EqualTo(new[] { "Cast", "Gemm", "Cast", "TopK" }));
        Assert.That(cast, Is.EqualTo(new[] { "Cast", "Gemm", "TopK" }));
        Assert.That(single, Is.EqualTo(new[] { "Gemm", "TopK" }));
    }

    [Test]
    public void Open_CudaOnTheCpuBuild_NamesTheBuildFlag()
    {
        Assume.That(OrtSessions.CudaBuild, Is.False);
        using var store = StoreTestData.WriteAll(TempDir, StoreTestData.Meta(10, Dim));

        var e = Assert.Throws<SettingException>(() => OrtStoreScan.Open(store, new SessionSettings(ExecutionDevice.Cuda)));

        Assert.That(e!.Message, Does.Contain("-p:OrtFlavor=cuda"));
    }

    [Test]
    public void ResolvedScan_AutoIsSimdOnCpuAndOnnxOnCuda()
    {
        Assert.That(SessionSettings.Default.ResolvedScan, Is.EqualTo(ScanEngine.Simd));
        Assert.That(new SessionSettings(ExecutionDevice.Cuda).ResolvedScan, Is.EqualTo(ScanEngine.Onnx));
        Assert.That(new SessionSettings { Scan = ScanEngine.Onnx }.ResolvedScan, Is.EqualTo(ScanEngine.Onnx));
        Assert.That(new SessionSettings(ExecutionDevice.Cuda) { Scan = ScanEngine.Simd }.ResolvedScan, Is.EqualTo(ScanEngine.Simd));
    }
}
