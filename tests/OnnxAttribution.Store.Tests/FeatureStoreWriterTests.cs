namespace OnnxAttribution.Store.Tests;

public sealed class FeatureStoreWriterTests : TempDirectoryTest
{
    private const int Dim = 13;
    private const int N = 37;

    private string Dir(string name) => Path.Combine(TempDir, name);

    private static byte[] Bytes(string dir) => File.ReadAllBytes(Path.Combine(dir, StoreFiles.Features));

    [TestCase(StoreDType.Float32)]
    [TestCase(StoreDType.Float16)]
    public void Complete_AllRowsWritten_OpensWithTheValues(StoreDType dtype)
    {
        using var store = StoreTestData.WriteAll(Dir("s"), StoreTestData.Meta(N, Dim, dtype));
        var row = new float[Dim];
        Assert.That((store.Rows, store.Dim, store.DType, store.FirstRow), Is.EqualTo(((long)N, Dim, dtype, 0L)));
        for (int r = 0; r < N; r++)
        {
            store.ReadRow(r, row);
            float[] expected = StoreTestData.Row(r, Dim);
            if (dtype == StoreDType.Float16)
            {
                expected = expected.Select(v => (float)(Half)v).ToArray();
            }
            Assert.That(row, Is.EqualTo(expected), $"row {r}");
        }
        Assert.That(new FileInfo(Path.Combine(store.Directory, StoreFiles.Features)).Length, Is.EqualTo(128 + (N * Dim * dtype.ElementSize())));
    }

    [TestCase(StoreDType.Float32)]
    [TestCase(StoreDType.Float16)]
    public void Resume_AfterKills_GivesByteIdenticalFeatures(StoreDType dtype)
    {
        var meta = StoreTestData.Meta(N, Dim, dtype);
        using (StoreTestData.WriteAll(Dir("straight"), meta))
        {
        }

        string dir = Dir("killed");
        // Session 1: rows out of order, some flushed; then "killed": disposed without Flush or Complete.
        using (var w = FeatureStoreWriter.OpenOrCreate(dir, meta))
        {
            w.WriteRows(30, 4, StoreTestData.Rows(30, 4, Dim));
            w.WriteRows(0, 5, StoreTestData.Rows(0, 5, Dim));
            w.Flush();
            w.WriteRows(10, 3, StoreTestData.Rows(10, 3, Dim)); // never flushed: pending again after the kill
        }
        // The kill also tore a row that was never marked done, and cut a bitmap write short.
        using (var f = new FileStream(Path.Combine(dir, StoreFiles.Features), FileMode.Open))
        {
            f.Position = 128 + (20 * Dim * dtype.ElementSize()) + 3;
            f.Write([0xde, 0xad, 0xbe, 0xef]);
        }
        byte[] bitmap = File.ReadAllBytes(Path.Combine(dir, StoreFiles.Done));
        File.WriteAllBytes(Path.Combine(dir, StoreFiles.Done + ".tmp"), bitmap[..(bitmap.Length / 2)]);

        // Session 2: resumes with exactly the flushed rows done.
        using (var w = FeatureStoreWriter.OpenOrCreate(dir, meta))
        {
            var pending = w.PendingRows;
            Assert.That(pending, Has.Count.EqualTo(N - 9));
            Assert.That(pending, Does.Not.Contain(0L).And.Not.Contain(33L).And.Contain(10L).And.Contain(20L));
            Assert.That((w.IsDone(4), w.IsDone(10)), Is.EqualTo((true, false)));
            Assert.That(File.Exists(Path.Combine(dir, StoreFiles.Done + ".tmp")), Is.False);
            foreach (long r in pending.Take(10))
            {
                w.WriteRows(r, 1, StoreTestData.Row(r, Dim));
            }
            w.Flush();
        }

        // Session 3: finishes.
        using (var w = FeatureStoreWriter.OpenOrCreate(dir, meta))
        {
            foreach (long r in w.PendingRows)
            {
                w.WriteRows(r, 1, StoreTestData.Row(r, Dim));
            }
            using var store = w.Complete();
        }

        Assert.That(Bytes(dir), Is.EqualTo(Bytes(Dir("straight"))));
    }

    [Test]
    public void OpenOrCreate_KilledBeforeMetaWritten_StartsOver()
    {
        string dir = Dir("s");
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, StoreFiles.Features), [1, 2, 3]);
        using var w = FeatureStoreWriter.OpenOrCreate(dir, StoreTestData.Meta(N, Dim));
        Assert.That(w.PendingRows, Has.Count.EqualTo(N));
    }

    [Test]
    public void OpenOrCreate_ForeignFilesWithoutMeta_Throws()
    {
        string dir = Dir("s");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "notes.txt"), "x");
        var e = Assert.Throws<StoreFormatException>(() => FeatureStoreWriter.OpenOrCreate(dir, StoreTestData.Meta(N, Dim)))!;
        Assert.That(e.Message, Does.Contain("notes.txt"));
    }

    [Test]
    public void OpenOrCreate_OtherSettings_ListsEveryDifference()
    {
        string dir = Dir("s");
        FeatureStoreWriter.Create(dir, StoreTestData.Meta(N, Dim)).Dispose();
        var other = StoreTestData.Meta(N, Dim) with { Timesteps = [100, 500], NoiseSeed = 9 };
        var e = Assert.Throws<StoreFormatException>(() => FeatureStoreWriter.OpenOrCreate(dir, other))!;
        Assert.That(e.Message, Does.Contain(Path.Combine(dir, "meta.json"))
            .And.Contain("timesteps: store has [100, 500, 900], writer asks [100, 500]")
            .And.Contain("noiseSeed: store has 7, writer asks 9"));
    }

    [Test]
    public void OpenOrCreate_TruncatedBitmap_ThrowsNamingIt()
    {
        string dir = Dir("s");
        FeatureStoreWriter.Create(dir, StoreTestData.Meta(N, Dim)).Dispose();
        string done = Path.Combine(dir, StoreFiles.Done);
        File.WriteAllBytes(done, File.ReadAllBytes(done)[..33]);
        var e = Assert.Throws<StoreFormatException>(() => FeatureStoreWriter.OpenOrCreate(dir, StoreTestData.Meta(N, Dim)))!;
        Assert.That(e.Message, Does.Contain(done).And.Contain("expected 37 bytes").And.Contain("found 33"));
    }

    [Test]
    public void OpenOrCreate_FeaturesShapeDisagreesWithMeta_Throws()
    {
        string dir = Dir("s");
        FeatureStoreWriter.Create(dir, StoreTestData.Meta(N, Dim)).Dispose();
        NpyFormat.CreatePreallocated(Path.Combine(dir, StoreFiles.Features), StoreDType.Float32, N, Dim + 1);
        var e = Assert.Throws<StoreFormatException>(() => FeatureStoreWriter.OpenOrCreate(dir, StoreTestData.Meta(N, Dim)))!;
        Assert.That(e.Message, Does.Contain("'shape': expected (37, 13)").And.Contain("found (37, 14)"));
    }

    [Test]
    public void Create_NonEmptyDirectory_Throws()
    {
        string dir = Dir("s");
        FeatureStoreWriter.Create(dir, StoreTestData.Meta(N, Dim)).Dispose();
        Assert.Throws<StoreFormatException>(() => FeatureStoreWriter.Create(dir, StoreTestData.Meta(N, Dim)));
    }

    [Test]
    public void Complete_RowsMissing_SaysHowMany()
    {
        using var w = FeatureStoreWriter.Create(Dir("s"), StoreTestData.Meta(N, Dim));
        w.WriteRows(0, 30, StoreTestData.Rows(0, 30, Dim));
        var e = Assert.Throws<InvalidOperationException>(() => w.Complete())!;
        Assert.That(e.Message, Does.Contain("7 of 37 rows").And.Contain("row 30"));
    }

    [Test]
    public void WriteRows_RowAlreadyDone_Throws()
    {
        using var w = FeatureStoreWriter.Create(Dir("s"), StoreTestData.Meta(N, Dim));
        w.WriteRows(3, 2, StoreTestData.Rows(3, 2, Dim));
        Assert.Throws<InvalidOperationException>(() => w.WriteRows(4, 1, StoreTestData.Row(4, Dim)));
    }

    [Test]
    public void WriteRows_BadArguments_Throw()
    {
        using var w = FeatureStoreWriter.Create(Dir("s"), StoreTestData.Meta(N, Dim));
        Assert.Throws<ArgumentOutOfRangeException>(() => w.WriteRows(36, 2, StoreTestData.Rows(36, 2, Dim)));
        Assert.Throws<ArgumentOutOfRangeException>(() => w.WriteRows(-1, 1, StoreTestData.Row(0, Dim)));
        Assert.Throws<ArgumentException>(() => w.WriteRows(0, 2, StoreTestData.Row(0, Dim)));
    }

    [Test]
    public void Open_Incomplete_ThrowsWithCount()
    {
        string dir = Dir("s");
        using (var w = FeatureStoreWriter.Create(dir, StoreTestData.Meta(N, Dim)))
        {
            w.WriteRows(0, 10, StoreTestData.Rows(0, 10, Dim));
            w.Flush();
        }
        var e = Assert.Throws<StoreFormatException>(() => FeatureStore.Open(dir))!;
        Assert.That(e.Message, Does.Contain("27 of 37 rows are not done"));
    }

    [Test]
    public void Open_ExpectedDiffers_ListsDifferences()
    {
        string dir = Dir("s");
        StoreTestData.WriteAll(dir, StoreTestData.Meta(N, Dim)).Dispose();
        var e = Assert.Throws<StoreFormatException>(() => FeatureStore.Open(dir, StoreTestData.Meta(N, Dim) with { Method = "das" }))!;
        Assert.That(e.Message, Does.Contain("method: store has \"trak\", query asks \"das\""));
        using var ok = FeatureStore.Open(dir, StoreTestData.Meta(N, Dim));
    }

    [Test]
    public void Open_FeaturesTruncated_Throws()
    {
        string dir = Dir("s");
        StoreTestData.WriteAll(dir, StoreTestData.Meta(N, Dim)).Dispose();
        using (var f = new FileStream(Path.Combine(dir, StoreFiles.Features), FileMode.Open))
        {
            f.SetLength(f.Length - 4);
        }
        var e = Assert.Throws<StoreFormatException>(() => FeatureStore.Open(dir))!;
        Assert.That(e.Message, Does.Contain(StoreFiles.Features).And.Contain("file length"));
    }

    [Test]
    public void Open_MissingMeta_Throws()
    {
        string dir = Dir("s");
        StoreTestData.WriteAll(dir, StoreTestData.Meta(N, Dim)).Dispose();
        File.Delete(Path.Combine(dir, StoreFiles.Meta));
        Assert.Throws<StoreFormatException>(() => FeatureStore.Open(dir));
        Assert.Throws<StoreFormatException>(() => FeatureStore.Open(Dir("nowhere")));
    }

    [TestCase(StoreDType.Float32, 3)]
    [TestCase(StoreDType.Float16, 4)]
    [TestCase(StoreDType.Float32, 40)]
    public void Merge_Shards_ByteIdenticalToUnshardedRun(StoreDType dtype, int count)
    {
        using (StoreTestData.WriteAll(Dir("whole"), StoreTestData.Meta(N, Dim, dtype)))
        {
        }
        var dirs = new List<string>();
        for (int i = count - 1; i >= 0; i--)
        {
            string dir = Dir($"shard{i}");
            using var shard = StoreTestData.WriteAll(dir, StoreTestData.Meta(N, Dim, dtype, new ShardSpec(i, count)), batch: 2);
            Assert.That((shard.FirstRow, shard.Rows), Is.EqualTo(((long)N * i / count, ((long)N * (i + 1) / count) - ((long)N * i / count))));
            dirs.Add(dir);
        }

        using var merged = FeatureStoreMerge.Merge(dirs, Dir("merged"));

        Assert.That(merged.Meta, Is.EqualTo(StoreTestData.Meta(N, Dim, dtype)));
        Assert.That(Bytes(Dir("merged")), Is.EqualTo(Bytes(Dir("whole"))));
        Assert.That(File.ReadAllBytes(Path.Combine(Dir("merged"), StoreFiles.Done)), Is.EqualTo(File.ReadAllBytes(Path.Combine(Dir("whole"), StoreFiles.Done))));
        Assert.That(File.ReadAllText(Path.Combine(Dir("merged"), StoreFiles.Meta)), Is.EqualTo(File.ReadAllText(Path.Combine(Dir("whole"), StoreFiles.Meta))));
    }

    [Test]
    public void Merge_ShardsDisagreeOrMissing_Throws()
    {
        StoreTestData.WriteAll(Dir("a"), StoreTestData.Meta(N, Dim, shard: new ShardSpec(0, 2))).Dispose();
        StoreTestData.WriteAll(Dir("b"), StoreTestData.Meta(N, Dim, shard: new ShardSpec(1, 2)) with { NoiseSeed = 99 }).Dispose();
        StoreTestData.WriteAll(Dir("c"), StoreTestData.Meta(N, Dim, shard: new ShardSpec(0, 2))).Dispose();
        var e = Assert.Throws<StoreFormatException>(() => FeatureStoreMerge.Merge([Dir("a"), Dir("b")], Dir("out1")))!;
        Assert.That(e.Message, Does.Contain("noiseSeed").And.Contain("7").And.Contain("99"));
        e = Assert.Throws<StoreFormatException>(() => FeatureStoreMerge.Merge([Dir("a"), Dir("c")], Dir("out2")))!;
        Assert.That(e.Message, Does.Contain("given twice"));
        e = Assert.Throws<StoreFormatException>(() => FeatureStoreMerge.Merge([Dir("a")], Dir("out3")))!;
        Assert.That(e.Message, Does.Contain("'shard.count': expected 1"));
    }
}
