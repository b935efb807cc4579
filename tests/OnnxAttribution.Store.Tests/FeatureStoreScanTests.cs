namespace OnnxAttribution.Store.Tests;

public sealed class FeatureStoreScanTests : TempDirectoryTest
{
    private const int Dim = 70;
    private const int N = 301; // several tiles, and a last tile that is not full

    private static float[] Queries(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count * Dim).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
    }

    [TestCase(StoreDType.Float32)]
    [TestCase(StoreDType.Float16)]
    public void Scores_MatchDoubleReference(StoreDType dtype)
    {
        using var store = StoreTestData.WriteAll(Path.Combine(TempDir, "s"), StoreTestData.Meta(N, Dim, dtype), batch: 64);
        const int qn = 5;
        float[] queries = Queries(qn, 1);
        var scores = new float[qn * N];
        store.Scores(queries, qn, scores);
        var row = new float[Dim];
        for (int i = 0; i < N; i++)
        {
            store.ReadRow(i, row);
            for (int j = 0; j < qn; j++)
            {
                double exact = 0, magnitude = 0;
                for (int c = 0; c < Dim; c++)
                {
                    exact += (double)row[c] * queries[(j * Dim) + c];
                    magnitude += Math.Abs((double)row[c] * queries[(j * Dim) + c]);
                }
                Assert.That(scores[(j * N) + i], Is.EqualTo(exact).Within(magnitude * Dim * 1.2e-7), $"row {i}, query {j}");
            }
        }
    }

    [Test]
    public void Scores_BatchSizeAndThreadCount_DoNotChangeAnyBit()
    {
        using var store = StoreTestData.WriteAll(Path.Combine(TempDir, "s"), StoreTestData.Meta(N, Dim), batch: 64);
        const int qn = 66; // 16 blocks of 4 and a remainder
        float[] queries = Queries(qn, 2);
        var batch = new float[qn * N];
        store.Scores(queries, qn, batch);
        store.MaxDegreeOfParallelism = 1;
        var single = new float[N];
        for (int j = 0; j < qn; j += 13)
        {
            store.Scores(queries.AsSpan(j * Dim, Dim), 1, single);
            Assert.That(single, Is.EqualTo(batch.AsSpan(j * N, N).ToArray()), $"query {j}");
        }
    }

    [TestCase(StoreDType.Float32, 1)]
    [TestCase(StoreDType.Float16, 10)]
    [TestCase(StoreDType.Float32, 301)]
    [TestCase(StoreDType.Float32, 500)]
    [TestCase(StoreDType.Float32, 0)]
    public void TopK_EqualsFullSortOfScores(StoreDType dtype, int k)
    {
        using var store = StoreTestData.WriteAll(Path.Combine(TempDir, "s"), StoreTestData.Meta(N, Dim, dtype), batch: 64);
        const int qn = 6;
        float[] queries = Queries(qn, 3);
        var scores = new float[qn * N];
        store.Scores(queries, qn, scores);
        var top = store.TopK(queries, qn, k);
        Assert.That(top, Has.Length.EqualTo(qn));
        for (int j = 0; j < qn; j++)
        {
            var expected = Enumerable.Range(0, N).OrderByDescending(i => scores[(j * N) + i]).ThenBy(i => i).Take(k).Select(i => (long)i).ToArray();
            Assert.That(top[j].Indices, Is.EqualTo(expected), $"query {j}");
            Assert.That(top[j].Scores, Is.EqualTo(expected.Select(i => scores[(j * N) + i]).ToArray()));
        }
    }

    [Test]
    public void TopK_TiesAndNaN_LowerIndexFirstAndNaNLast()
    {
        // Rows 0..9 are scaled copies; rows 3 and 7 are equal, row 5 holds a NaN.
        const int dim = 4, n = 10;
        var meta = StoreTestData.Meta(n, dim);
        using var writer = FeatureStoreWriter.Create(Path.Combine(TempDir, "s"), meta);
        for (int r = 0; r < n; r++)
        {
            float v = r is 3 or 7 ? 7 : r;
            writer.WriteRows(r, 1, r == 5 ? [float.NaN, 0, 0, 0] : [v, v, v, v]);
        }
        using var store = writer.Complete();
        foreach (int threads in new[] { 1, 4 })
        {
            store.MaxDegreeOfParallelism = threads;
            var top = store.TopK([1, 1, 1, 1], 1, n)[0];
            Assert.That(top.Indices, Is.EqualTo(new long[] { 9, 8, 3, 7, 6, 4, 2, 1, 0, 5 }));
            Assert.That(float.IsNaN(top.Scores[^1]), Is.True);
            Assert.That(store.TopK([1, 1, 1, 1], 1, 3)[0].Indices, Is.EqualTo(new long[] { 9, 8, 3 }));
        }
    }

    [Test]
    public void TopK_Shard_ReturnsDatasetRowIndices()
    {
        var meta = StoreTestData.Meta(N, Dim, shard: new ShardSpec(2, 3));
        using var store = StoreTestData.WriteAll(Path.Combine(TempDir, "s"), meta, batch: 64);
        float[] query = StoreTestData.Row(250, Dim); // its own row scores highest (|row|² vs other rows' ⟨row, ·⟩)
        var top = store.TopK(query, 1, 1)[0];
        Assert.That((store.FirstRow, top.Indices[0]), Is.EqualTo((200L, 250L)));
    }

    [Test]
    public void Scores_WrongLengths_Throw()
    {
        using var store = StoreTestData.WriteAll(Path.Combine(TempDir, "s"), StoreTestData.Meta(N, Dim), batch: 64);
        Assert.Throws<ArgumentException>(() => store.Scores(new float[Dim + 1], 1, new float[N]));
        Assert.Throws<ArgumentException>(() => store.Scores(new float[Dim], 1, new float[N - 1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.TopK(new float[Dim], 1, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.ReadRow(N, new float[Dim]));
    }

    [Test]
    public void Dispose_ThenQuery_ThrowsObjectDisposed()
    {
        var store = StoreTestData.WriteAll(Path.Combine(TempDir, "s"), StoreTestData.Meta(N, Dim), batch: 64);
        store.Dispose();
        store.Dispose();
        Assert.Throws<ObjectDisposedException>(() => store.TopK(new float[Dim], 1, 1));
    }
}
