using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Primitives;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests.Store;

/// <summary>One writer per store, disk space reserved up front, no partial files, damaged values named.</summary>
public sealed class StoreWriterSafetyTests : TempDirectoryTest
{
    private const int Dim = 6;
    private const int N = 10;

    private string Dir(string name) => Path.Combine(TempDir, name);

    [Test]
    public void OpenOrCreate_SecondWriter_RefusedNamingTheHolder()
    {
        var meta = StoreTestData.Meta(N, Dim);
        using var first = FeatureStoreWriter.OpenOrCreate(Dir("s"), meta);

        var e = Assert.Throws<StoreLockedException>(() => FeatureStoreWriter.OpenOrCreate(Dir("s"), meta));

        Assert.That(e!.Message, Does.Contain(Dir("s")).And.Contain($"pid {Environment.ProcessId}").And.Contain(Environment.MachineName).And.Contain(StoreFiles.WriterLock));
    }

    [Test]
    public void OpenOrCreate_LockHeldByAnotherProcess_RefusedUntilThatProcessIsKilled()
    {
        Assert.That(File.Exists("/usr/bin/flock"), Is.True, "needs util-linux's flock(1) (part of every Debian system) to hold the lock from another process");
        Directory.CreateDirectory(Dir("s"));
        var lockPath = Path.Combine(Dir("s"), StoreFiles.WriterLock);
        using var other = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("/usr/bin/flock", [lockPath, "sleep", "60"]))!;
        try
        {
            // flock(1) takes the lock a moment after it starts: wait until the store is refused.
            var clock = System.Diagnostics.Stopwatch.StartNew();
            StoreLockedException? refused = null;
            while (refused is null && clock.Elapsed < TimeSpan.FromSeconds(20))
            {
                try
                {
                    StoreLock.Acquire(Dir("s"), "test").Dispose();
                    Thread.Sleep(20);
                }
                catch (StoreLockedException e)
                {
                    refused = e;
                }
            }
            Assert.That(refused, Is.Not.Null, "the other process never took the lock");
            Assert.That(() => FeatureStoreWriter.OpenOrCreate(Dir("s"), StoreTestData.Meta(N, Dim)), Throws.TypeOf<StoreLockedException>());
        }
        finally
        {
            other.Kill(entireProcessTree: true);
            other.WaitForExit();
        }

        // The operating system releases the lock once the holder (flock and its child, killed asynchronously) is gone.
        var released = System.Diagnostics.Stopwatch.StartNew();
        FeatureStoreWriter? writer = null;
        while (writer is null)
        {
            try
            {
                writer = FeatureStoreWriter.OpenOrCreate(Dir("s"), StoreTestData.Meta(N, Dim));
            }
            catch (StoreLockedException) when (released.Elapsed < TimeSpan.FromSeconds(10))
            {
                Thread.Sleep(20);
            }
        }
        using (writer)
        {
            Assert.That(writer.RowCount, Is.EqualTo(N));
        }
    }

    [Test]
    public void OpenOrCreate_AfterTheFirstWriterIsDisposed_Resumes()
    {
        var meta = StoreTestData.Meta(N, Dim);
        using (var first = FeatureStoreWriter.OpenOrCreate(Dir("s"), meta))
        {
            first.WriteRows(0, 3, StoreTestData.Rows(0, 3, Dim));
            first.Flush();
        }

        // The empty lock file is left behind (as after a kill), the holder's record is not; the next writer is not blocked.
        Assert.That(new FileInfo(Path.Combine(Dir("s"), StoreFiles.WriterLock)).Length, Is.Zero);
        Assert.That(File.Exists(Path.Combine(Dir("s"), StoreFiles.WriterLockHolder)), Is.False);
        using var second = FeatureStoreWriter.OpenOrCreate(Dir("s"), meta);
        Assert.That(second.DoneCount, Is.EqualTo(3));
    }

    [Test]
    public void Open_WhileAWriterHoldsTheStore_ReadersAreNotBlocked()
    {
        var meta = StoreTestData.Meta(N, Dim);
        using (StoreTestData.WriteAll(Dir("s"), meta))
        {
        }
        using var writer = StoreLock.Acquire(Dir("s"), "test");

        using var reader = FeatureStore.Open(Dir("s"));

        Assert.That(reader.Rows, Is.EqualTo(N));
    }

    [Test]
    public void Finalize_WhileAnotherWriterHoldsTheStore_RefusedWithoutWriting()
    {
        using (StoreTestData.WriteAll(Dir("s"), StoreTestData.Meta(N, Dim)))
        {
        }
        using var holder = StoreLock.Acquire(Dir("s"), "featurize");

        var e = Assert.Throws<StoreLockedException>(() => PreconditionerBuilder.Finalize(Dir("s"), 1e-3));

        Assert.That(e!.Message, Does.Contain("featurize"));
        Assert.That(Directory.GetFiles(Dir("s")).Select(Path.GetFileName), Has.None.StartsWith(StoreFiles.Preconditioner));
    }

    [Test]
    public void Create_FeaturesLargerThanTheDisk_RefusedAtOnceSayingHowMuchAndLeavingNoFeatures()
    {
        // 2^40 rows × 4096 float32: 16 PiB, more than any test machine's disk (and than ext4's largest file).
        var meta = StoreTestData.Meta(1L << 40, 4096);

        var e = Assert.Throws<AttributionException>(() => FeatureStoreWriter.Create(Dir("s"), meta));

        long dataBytes = (1L << 40) * 4096 * sizeof(float);
        Assert.That(e!.Message, Does.Contain("cannot reserve").And.Contain($"{dataBytes / (double)(1L << 30):F1} GiB"));
        Assert.That(File.Exists(Path.Combine(Dir("s"), StoreFiles.Features)), Is.False);
        // The lock was released with the failure: a store of a sensible size can be created there now.
        using var writer = FeatureStoreWriter.OpenOrCreate(Dir("s"), StoreTestData.Meta(N, Dim));
        Assert.That(writer.RowCount, Is.EqualTo(N));
    }

    [Test]
    public void Finalize_NaNFeature_NamesTheRowInsteadOfAdvisingDamping()
    {
        var meta = StoreTestData.Meta(N, Dim);
        using (var writer = FeatureStoreWriter.Create(Dir("s"), meta))
        {
            var rows = StoreTestData.Rows(0, N, Dim);
            rows[(7 * Dim) + 2] = float.NaN;
            writer.WriteRows(0, N, rows);
            writer.Complete().Dispose();
        }

        var e = Assert.Throws<StoreFormatException>(() => PreconditionerBuilder.Finalize(Dir("s"), 1e-3));

        Assert.That(e!.Message, Does.Contain("row 7").And.Contain("NaN").And.Contain("column 2").And.Not.Contain("damping"));
        Assert.That(Directory.GetFiles(Dir("s")).Select(Path.GetFileName), Has.None.StartsWith(StoreFiles.Preconditioner));
    }

    [TestCase(-1.0)]
    [TestCase(double.NaN)]
    [TestCase(double.PositiveInfinity)]
    public void Finalize_BadDamping_UserInputNamingIt(double damping)
    {
        using (StoreTestData.WriteAll(Dir("s"), StoreTestData.Meta(N, Dim)))
        {
        }

        var e = Assert.Throws<UserInputException>(() => PreconditionerBuilder.Finalize(Dir("s"), damping));

        Assert.That(e!.Message, Does.Contain("damping"));
    }

    [TestCase("modelFingerprint", "abc")]
    [TestCase("modelFingerprint", "")]
    [TestCase("datasetFingerprint", "ZZZZ")]
    public void FromJson_MalformedFingerprint_NamesTheField(string field, string value)
    {
        var meta = StoreTestData.Meta(N, Dim);
        var json = System.Text.Json.Nodes.JsonNode.Parse(meta.ToJson())!.AsObject();
        json[field] = value;

        var e = Assert.Throws<StoreFormatException>(() => StoreMeta.FromJson(json.ToJsonString(), "meta.json"));

        Assert.That(e!.Message, Does.Contain($"field '{field}'").And.Contain("64 lower-case hex"));
    }
}
