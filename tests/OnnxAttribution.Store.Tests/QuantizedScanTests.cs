using System.Text.Json;
using System.Text.Json.Nodes;

namespace OnnxAttribution.Store.Tests;

/// <summary>
/// The 8-bit copy (<see cref="StoreQuantizer"/>) and the top-k scan over it with an exact re-rank: every answer must be the
/// exact scan's, row for row and bit for bit, including on inputs built so that the 8-bit scores alone would answer wrongly.
/// </summary>
public sealed unsafe class QuantizedScanTests : TempDirectoryTest
{
    private static IEnumerable<string> Widths()
    {
        yield return nameof(SimdWidth.Auto);
        yield return nameof(SimdWidth.Scalar);
        if (System.Runtime.Intrinsics.Vector128.IsHardwareAccelerated)
        {
            yield return nameof(SimdWidth.W128);
        }
        if (System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated)
        {
            yield return nameof(SimdWidth.W256);
        }
    }

    private FeatureStore Write(string name, float[] rows, int dim, StoreDType dtype = StoreDType.Float32, IReadOnlyList<long>? removed = null, bool quantize = true)
    {
        string dir = Path.Combine(TempDir, name);
        long n = rows.Length / dim;
        var meta = StoreTestData.Meta(n, dim, dtype) with { RemovedRows = removed };
        using (var writer = FeatureStoreWriter.Create(dir, meta))
        {
            writer.WriteRows(0, (int)n, rows);
            writer.Complete().Dispose();
        }
        if (quantize)
        {
            StoreQuantizer.Quantize(dir);
        }
        return FeatureStore.Open(dir);
    }

    private static float[] Uniform(int count, int seed, float scale = 1)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)((random.NextDouble() * 2) - 1) * scale).ToArray();
    }

    /// <summary>Values 1 + [0, 10⁻⁴): rows whose scores differ by far less than their quantisation error.</summary>
    private static float[] NearlyEqualRows(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => 1f + (float)(random.NextDouble() * 1e-4)).ToArray();
    }

    /// <summary>
    /// Asserts the public answer equals the exact scan's for every query, and that it came from the copy (or, with
    /// <paramref name="fromCopy"/> false, that the copy declined and the exact scan answered); returns the answer.
    /// </summary>
    private static TopKResult[] AssertSameAsExact(FeatureStore store, float[] queries, int queryCount, int k, bool fromCopy = true)
    {
        Assert.That(store.HasQuantizedRows, Is.True, "the store has its 8-bit copy");
        Assert.That(store.QuantizedTopK(queries, queryCount, k) is not null, Is.EqualTo(fromCopy), "whether the copy answers");
        store.UseQuantizedRows = false;
        var exact = store.TopK(queries, queryCount, k);
        store.UseQuantizedRows = true;
        var answer = store.TopK(queries, queryCount, k);
        for (int j = 0; j < queryCount; j++)
        {
            Assert.That(answer[j].Indices, Is.EqualTo(exact[j].Indices), $"query {j}: rows");
            Assert.That(answer[j].Scores.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(exact[j].Scores.Select(BitConverter.SingleToInt32Bits)),
                $"query {j}: score bits");
        }
        return answer;
    }

    [TestCaseSource(nameof(Widths))]
    public void TopK_RandomRows_EqualsExactScanAtEveryWidth(string widthName)
    {
        foreach (var dtype in new[] { StoreDType.Float32, StoreDType.Float16 })
        {
            const int dim = 1100, n = 301;
            using var store = Write($"{dtype}", Uniform(n * dim, 1), dim, dtype);
            store.Width = Enum.Parse<SimdWidth>(widthName);
            foreach (int k in new[] { 1, 10, 64 })
            {
                AssertSameAsExact(store, Uniform(5 * dim, 2), 5, k);
                AssertSameAsExact(store, Uniform(dim, 3), 1, k);
            }
        }
    }

    [Test]
    public void TopK_RowsWhose8BitScoresReorder_EqualsExactScan()
    {
        // Row i = base + i·ε in column 0: every row rounds to the same int8 codes and scale, so the 8-bit scores are all equal,
        // and the 8-bit ranking alone would answer rows 0..k−1. The exact scores rise with i: the answer is the last k rows.
        const int dim = 48, n = 200, k = 5;
        var rows = new float[n * dim];
        var baseRow = Uniform(dim, 4, 0.5f);
        baseRow[1] = 1f; // fixes every row's scale at 1/127
        for (int i = 0; i < n; i++)
        {
            baseRow.CopyTo(rows, i * dim);
            rows[i * dim] += i * 1e-5f;
        }
        using var store = Write("reorder", rows, dim);
        var query = new float[dim];
        query[0] = 1;
        var result = AssertSameAsExact(store, query, 1, k);
        Assert.That(result[0].Indices, Is.EqualTo(new long[] { 199, 198, 197, 196, 195 }));
        var codes = File.ReadAllBytes(Path.Combine(store.Directory, StoreFiles.QuantizedFeatures));
        int offset = codes.Length - (n * dim);
        Assert.That(codes.AsSpan(offset, dim).SequenceEqual(codes.AsSpan(offset + ((n - 1) * dim), dim)), Is.True,
            "the first and last rows have the same 8-bit codes: the test really breaks an 8-bit-only ranking");
    }

    [Test]
    public void TopK_TiesAndDuplicateRows_LowerRowFirstAsTheExactScan()
    {
        const int dim = 40, n = 120;
        var one = Uniform(dim, 5);
        var rows = new float[n * dim];
        for (int i = 0; i < n; i++)
        {
            (i % 3 == 0 ? one : Uniform(dim, 100 + i, 0.2f)).CopyTo(rows, i * dim);
        }
        using var store = Write("ties", rows, dim);
        var result = AssertSameAsExact(store, one, 1, 12);
        Assert.That(result[0].Indices.Take(12), Is.EqualTo(Enumerable.Range(0, 12).Select(i => (long)i * 3)), "the 40 equal rows, lowest first");
    }

    [Test]
    public void TopK_RemovedRowsThatWouldWin_AreNeverReturned()
    {
        // Every live row scores below zero; the removed rows are zero (score 0) and would come first if the copy let them in.
        const int dim = 32, n = 150;
        var rows = Uniform(n * dim, 6, 0.1f);
        long[] removed = [3, 40, 41, 149];
        for (int i = 0; i < n; i++)
        {
            rows[i * dim] = removed.Contains(i) ? 0 : -5f;
            if (removed.Contains(i))
            {
                Array.Clear(rows, i * dim, dim);
            }
        }
        using var store = Write("removed", rows, dim, removed: removed);
        var query = new float[dim];
        query[0] = 1;
        foreach (int k in new[] { 1, 7, n - 4, n + 10 })
        {
            var result = AssertSameAsExact(store, query, 1, k);
            Assert.That(result[0].Indices.Intersect(removed), Is.Empty, $"k = {k}");
            Assert.That(result[0].Count, Is.EqualTo(Math.Min(k, n - removed.Length)), $"k = {k}");
        }
    }

    [TestCase(StoreDType.Float32)]
    [TestCase(StoreDType.Float16)]
    public void TopK_KLargerThanRows_ReturnsEveryRowInExactOrder(StoreDType dtype)
    {
        const int dim = 20, n = 37;
        using var store = Write("small", Uniform(n * dim, 7), dim, dtype);
        var result = AssertSameAsExact(store, Uniform(3 * dim, 8), 3, n + 50);
        Assert.That(result.Select(r => r.Count), Is.All.EqualTo(n));
    }

    [Test]
    public void TopK_BoundSoWideThatEveryRowIsACandidate_EqualsExactScan()
    {
        // Rows that differ by far less than their quantisation error, and more rows than the candidate limit (4096): the copy
        // keeps them all as candidates, gives up, and the exact scan answers.
        const int dim = 16, n = 6000;
        using var store = Write("wide", NearlyEqualRows(n * dim, 9), dim);
        AssertSameAsExact(store, Uniform(2 * dim, 10), 2, 3, fromCopy: false);
        AssertSameAsExact(store, Uniform(dim, 11), 1, 300, fromCopy: false);
    }

    [Test]
    public void TopK_ThousandsOfCandidatesUnderTheLimit_CopyAnswersExactly()
    {
        // 3000 rows within each other's bound: all are re-ranked from the exact rows, and the copy still answers.
        const int dim = 16, n = 3000;
        using var store = Write("many", NearlyEqualRows(n * dim, 22), dim);
        AssertSameAsExact(store, Uniform(3 * dim, 23), 3, 4);
    }

    [Test]
    public void TopK_RowWithNaNOrInfinity_IsReRankedExactly()
    {
        const int dim = 24, n = 90;
        var rows = Uniform(n * dim, 12);
        rows[(5 * dim) + 3] = float.NaN;
        rows[(60 * dim) + 1] = float.PositiveInfinity;
        using var store = Write("nan", rows, dim);
        var scales = NpyFormat.ReadMatrix(Path.Combine(store.Directory, StoreFiles.QuantizedScales)).Values;
        Assert.That(float.IsNaN(scales[5]) && float.IsNaN(scales[60]), Is.True, "rows the rule cannot bound get a NaN scale");
        var query = Uniform(dim, 13);
        query[1] = 0.5f;
        AssertSameAsExact(store, query, 1, 10);
        AssertSameAsExact(store, query, 1, n);
    }

    [Test]
    public void TopK_QueryWithNaN_FallsBackToTheExactScan()
    {
        const int dim = 24, n = 50;
        using var store = Write("nanquery", Uniform(n * dim, 14), dim);
        var query = Uniform(dim, 15);
        query[2] = float.NaN;
        AssertSameAsExact(store, query, 1, 5, fromCopy: false);
    }

    [Test]
    public void Quantize_Rows_WithinHalfAScaleOfTheRow()
    {
        var row = Uniform(300, 16, 3f);
        var codes = new sbyte[row.Length];
        float scale = QuantizedRows.Quantize(row, codes);
        Assert.That(scale, Is.EqualTo(row.Max(Math.Abs) / 127f));
        Assert.That(codes.Select(c => (int)c), Has.Some.EqualTo(127).Or.Some.EqualTo(-127));
        for (int j = 0; j < row.Length; j++)
        {
            Assert.That(Math.Abs(row[j] - ((double)scale * codes[j])), Is.LessThanOrEqualTo(scale * 0.5000001), $"column {j}");
        }
        Assert.That(QuantizedRows.Quantize(new float[8], codes), Is.EqualTo(0f));
        Assert.That(float.IsNaN(QuantizedRows.Quantize([1e-42f, 0f], codes)), Is.True, "a subnormal scale is not bounded by the rule");
    }

    [Test]
    public void ScoreBound_HoldsTheExactScoreOfRandomRows()
    {
        const int dim = 777;
        var random = new Random(17);
        float* scratch = stackalloc float[ScanKernels.ScratchFloats];
        for (int trial = 0; trial < 300; trial++)
        {
            float magnitude = (float)Math.Pow(10, random.Next(-6, 6));
            var row = Uniform(dim, 1000 + trial, magnitude);
            var query = Uniform(dim, 2000 + trial, (float)Math.Pow(10, random.Next(-6, 6)));
            if (trial % 3 == 0)
            {
                query[trial % dim] *= 1000; // one large value: a coarse query step
            }
            var codes = new sbyte[dim];
            var shorts = new short[dim];
            float scale = QuantizedRows.Quantize(row, codes);
            double step = Int8Kernels.QuantizeQuery(query, shorts);
            float exact;
            long sum;
            fixed (float* r = row)
            fixed (sbyte* c = codes)
            fixed (float* q = query)
            fixed (short* qs = shorts)
            {
                ScanKernels.ScoreTile(SimdWidth.Auto, (byte*)r, StoreDType.Float32, 1, dim, q, 1, &exact, 1, scratch);
                Int8Kernels.DotTile(SimdWidth.Auto, c, 1, dim, qs, 1, &sum, 1);
            }
            var (lower, upper) = QuantizedRows.ScoreBound(sum, scale, step, QuantizedRows.BoundFactor(query.Sum(v => Math.Abs((double)v)), step, dim), dim);
            Assert.That(exact, Is.InRange(lower, upper), $"trial {trial}");
            Assert.That(upper - lower, Is.LessThan(0.1 * query.Sum(v => Math.Abs((double)v)) * magnitude), "the bound is about ‖q‖₁·s, not looser");
        }
    }

    [Test]
    public void Open_CopyMadeFromOtherRows_IsRefusedAsStale()
    {
        const int dim = 16, n = 30;
        Write("stale", Uniform(n * dim, 18), dim).Dispose();
        string dir = Path.Combine(TempDir, "stale");
        string sumsPath = Path.Combine(dir, StoreFiles.Checksums);
        var json = JsonNode.Parse(File.ReadAllText(sumsPath))!;
        json["quantizedFrom"] = "0123456789abcdef";
        File.WriteAllText(sumsPath, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var e = Assert.Throws<StoreFormatException>(() => FeatureStore.Open(dir).Dispose());
        Assert.That(e!.Message, Does.Contain("stale").And.Contain("quantize"));
    }

    [Test]
    public void Open_EditedScalesOrMissingRows_IsRefused()
    {
        const int dim = 16, n = 30;
        Write("edited", Uniform(n * dim, 19), dim).Dispose();
        string dir = Path.Combine(TempDir, "edited");
        string scales = Path.Combine(dir, StoreFiles.QuantizedScales);
        var bytes = File.ReadAllBytes(scales);
        bytes[^1] ^= 0x40;
        File.WriteAllBytes(scales, bytes);
        var e = Assert.Throws<StoreFormatException>(() => FeatureStore.Open(dir).Dispose());
        Assert.That(e!.Message, Does.Contain(StoreFiles.QuantizedScales).And.Contain("checksum"));
        File.Delete(Path.Combine(dir, StoreFiles.QuantizedFeatures));
        e = Assert.Throws<StoreFormatException>(() => FeatureStore.Open(dir).Dispose());
        Assert.That(e!.Message, Does.Contain(StoreFiles.QuantizedFeatures).And.Contain("missing"));
    }

    [Test]
    public void Delete_RemovesTheCopyAndItsRecord_StoreOpensWithoutIt()
    {
        const int dim = 16, n = 30;
        Write("deleted", Uniform(n * dim, 20), dim).Dispose();
        string dir = Path.Combine(TempDir, "deleted");
        StoreQuantizer.Delete(dir);
        using var store = FeatureStore.Open(dir);
        Assert.That(store.HasQuantizedRows, Is.False);
        var sums = StoreChecksums.TryLoad(dir)!;
        Assert.That(sums.QuantizedFrom, Is.Null);
        Assert.That(sums.Files.Keys, Has.None.EqualTo(StoreFiles.QuantizedFeatures).And.None.EqualTo(StoreFiles.QuantizedScales));
    }

    [Test]
    public void Quantize_WritesAnInt8NpyAndRecordsBothFiles()
    {
        const int dim = 10, n = 7;
        Write("files", Uniform(n * dim, 21), dim).Dispose();
        string dir = Path.Combine(TempDir, "files");
        var header = NpyFormat.ReadHeader(Path.Combine(dir, StoreFiles.QuantizedFeatures));
        Assert.That((header.DType, header.Rows, header.Columns, header.DataOffset), Is.EqualTo((StoreDType.Int8, 7L, 10L, 128L)));
        var sums = StoreChecksums.TryLoad(dir)!;
        Assert.That(sums.QuantizedFrom, Is.EqualTo(sums.FeaturesFingerprint()));
        Assert.That(sums.Files.Keys, Has.Some.EqualTo(StoreFiles.QuantizedFeatures).And.Some.EqualTo(StoreFiles.QuantizedScales));
    }
}
