using System.Text.Json;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests.Store;

/// <summary>checksums.json: written right whatever wrote the rows, checked on open (sampled) and by the verifier (every chunk).</summary>
public sealed class StoreChecksumsTests : TempDirectoryTest
{
    /// <summary>4096 float32 columns: 16 KiB rows, 256 rows per 4 MiB chunk, so 600 rows are three chunks (256, 256, 88).</summary>
    private const int WideDim = 4096;
    private const int WideRows = 600;

    private string Dir(string name) => Path.Combine(TempDir, name);

    private static string FeaturesPath(string dir) => Path.Combine(dir, StoreFiles.Features);

    /// <summary>Overwrites the first value of dataset row <paramref name="row"/> (a float32 store of <paramref name="dim"/> columns).</summary>
    private static void PokeRow(string dir, long row, int dim, float value)
    {
        using var f = new FileStream(FeaturesPath(dir), FileMode.Open);
        f.Position = NpyFormat.ReadHeader(FeaturesPath(dir)).DataOffset + (row * dim * sizeof(float));
        f.Write(BitConverter.GetBytes(value));
    }

    [Test]
    public void Complete_WideStore_ChunksOfAbout4MiBCoverEveryRow()
    {
        StoreTestData.WriteAll(Dir("s"), StoreTestData.Meta(WideRows, WideDim), batch: 64).Dispose();

        var sums = StoreChecksums.TryLoad(Dir("s"))!;

        Assert.That(sums, Is.Not.Null);
        Assert.That((sums.ChunkRows, sums.Rows, sums.FeatureChunks.Count), Is.EqualTo((256L, (long)WideRows, 3)));
        Assert.That(sums.Files.Keys, Is.EquivalentTo(new[] { StoreFiles.Meta }));
        Assert.That(StoreMeta.Load(Path.Combine(Dir("s"), StoreFiles.Meta)).Checksums, Is.EqualTo(StoreChecksums.AlgorithmName));
    }

    [Test]
    public void Checksums_ResumedAndMergedStores_EqualTheUninterruptedRun()
    {
        const int n = 37, dim = 13;
        StoreTestData.WriteAll(Dir("whole"), StoreTestData.Meta(n, dim)).Dispose();
        // Resumed: half the rows, a "kill" (dispose without Complete), then the rest in another order.
        using (var w = FeatureStoreWriter.OpenOrCreate(Dir("resumed"), StoreTestData.Meta(n, dim)))
        {
            w.WriteRows(20, 10, StoreTestData.Rows(20, 10, dim));
            w.Flush();
        }
        using (var w = FeatureStoreWriter.OpenOrCreate(Dir("resumed"), StoreTestData.Meta(n, dim)))
        {
            foreach (long r in w.PendingRows)
            {
                w.WriteRows(r, 1, StoreTestData.Rows(r, 1, dim));
            }
            w.Complete().Dispose();
        }
        var shards = Enumerable.Range(0, 3).Select(i =>
        {
            StoreTestData.WriteAll(Dir($"shard{i}"), StoreTestData.Meta(n, dim, shard: new ShardSpec(i, 3)), batch: 2).Dispose();
            return Dir($"shard{i}");
        }).ToList();
        FeatureStoreMerge.Merge(shards, Dir("merged")).Dispose();

        string whole = File.ReadAllText(Path.Combine(Dir("whole"), StoreFiles.Checksums));
        Assert.That(File.ReadAllText(Path.Combine(Dir("resumed"), StoreFiles.Checksums)), Is.EqualTo(whole));
        Assert.That(File.ReadAllText(Path.Combine(Dir("merged"), StoreFiles.Checksums)), Is.EqualTo(whole));
    }

    [Test]
    public void Open_OneChunkStoreWithAChangedRow_ThrowsNamingFileAndRows()
    {
        StoreTestData.WriteAll(Dir("s"), StoreTestData.Meta(37, 13)).Dispose();
        PokeRow(Dir("s"), 30, 13, 0.5f);

        var e = Assert.Throws<StoreFormatException>(() => FeatureStore.Open(Dir("s")))!;

        Assert.That(e.Message, Does.Contain(FeaturesPath(Dir("s"))).And.Contain("rows 0–36").And.Contain("verify"));
    }

    [Test]
    public void Verify_RowChangedInTheMiddleChunk_FailsNamingThatChunksRows()
    {
        StoreTestData.WriteAll(Dir("s"), StoreTestData.Meta(WideRows, WideDim), batch: 64).Dispose();
        Assert.That(StoreVerifier.Verify(Dir("s")).Ok, Is.True);
        PokeRow(Dir("s"), 300, WideDim, 0.25f);

        var result = StoreVerifier.Verify(Dir("s"));

        var failed = result.Checks.Where(c => !c.Ok).ToList();
        Assert.That(failed.Select(c => (c.File, c.Check)), Is.EqualTo(new[] { (FeaturesPath(Dir("s")), "chunks") }));
        Assert.That(failed[0].Detail, Does.Contain("rows 256–511").And.Contain("1 of 3 chunks"));
    }

    [Test]
    public void Verify_NaNWrittenByTheFeaturizer_FailsTheFiniteCheckNamingTheRow()
    {
        var meta = StoreTestData.Meta(10, 4);
        using (var w = FeatureStoreWriter.Create(Dir("s"), meta))
        {
            var rows = StoreTestData.Rows(0, 10, 4);
            rows[(7 * 4) + 2] = float.NaN;
            w.WriteRows(0, 10, rows);
            w.Complete().Dispose();
        }

        var result = StoreVerifier.Verify(Dir("s"));

        var finite = result.Checks.Single(c => c.Check == "finite");
        Assert.That((result.Ok, finite.Ok), Is.EqualTo((false, false)));
        Assert.That(finite.Detail, Does.Contain("1 rows hold NaN or Infinity: 7"));
    }

    [Test]
    public void Open_MetaJsonEditedAfterwards_ThrowsNamingMetaJson()
    {
        StoreTestData.WriteAll(Dir("s"), StoreTestData.Meta(37, 13)).Dispose();
        string metaPath = Path.Combine(Dir("s"), StoreFiles.Meta);
        File.WriteAllText(metaPath, File.ReadAllText(metaPath).Replace("\"noiseSeed\": 7", "\"noiseSeed\": 8", StringComparison.Ordinal));

        var e = Assert.Throws<StoreFormatException>(() => FeatureStore.Open(Dir("s")))!;

        Assert.That(e.Message, Does.StartWith(metaPath).And.Contain("does not match its checksum"));
    }

    [Test]
    public void Open_StoreMadeBeforeChecksums_OpensAndVerifiesByWhatItHas()
    {
        StoreTestData.WriteAll(Dir("s"), StoreTestData.Meta(37, 13)).Dispose();
        // What an older writer left: no checksums.json, no 'checksums' field.
        File.Delete(Path.Combine(Dir("s"), StoreFiles.Checksums));
        File.WriteAllText(Path.Combine(Dir("s"), StoreFiles.Meta), StoreTestData.Meta(37, 13).ToJson());

        using (FeatureStore.Open(Dir("s")))
        {
        }
        var result = StoreVerifier.Verify(Dir("s"));

        Assert.That(result.Ok, Is.True);
        Assert.That(result.Checks.Single(c => c.File.EndsWith(StoreFiles.Checksums, StringComparison.Ordinal)).Detail, Does.Contain("made before checksums"));
    }

    [Test]
    public void Open_ChecksumsFileDeletedFromANewStore_ThrowsNamingIt()
    {
        StoreTestData.WriteAll(Dir("s"), StoreTestData.Meta(37, 13)).Dispose();
        File.Delete(Path.Combine(Dir("s"), StoreFiles.Checksums));

        var e = Assert.Throws<StoreFormatException>(() => FeatureStore.Open(Dir("s")))!;

        Assert.That(e.Message, Does.StartWith(Path.Combine(Dir("s"), StoreFiles.Checksums)).And.Contain("'checksums'"));
    }

    [TestCase("{", "not a valid checksums.json")]
    [TestCase("null", "expected a JSON object")]
    [TestCase("{\"chunkRows\": \"many\", \"rows\": 37, \"featureChunks\": []}", "not a valid checksums.json")]
    [TestCase("{\"chunkRows\": 0, \"rows\": 37, \"featureChunks\": []}", "'chunkRows'")]
    [TestCase("{\"chunkRows\": -5, \"rows\": 37, \"featureChunks\": []}", "'chunkRows'")]
    [TestCase("{\"chunkRows\": 9223372036854775807, \"rows\": 37, \"featureChunks\": [\"00\"]}", "'chunkRows'")]
    [TestCase("{\"chunkRows\": 37, \"rows\": 36, \"featureChunks\": [\"00\"]}", "'rows'")]
    [TestCase("{\"chunkRows\": 10, \"rows\": 37, \"featureChunks\": [\"00\"]}", "'featureChunks': expected 4")]
    [TestCase("{\"algorithm\": \"md5\", \"chunkRows\": 37, \"rows\": 37, \"featureChunks\": [\"00\"]}", "'algorithm'")]
    [TestCase("{\"chunkRows\": 37, \"rows\": 37, \"featureChunks\": [\"00\"], \"files\": {\"meta.json\": {\"bytes\": -1, \"hash\": \"0011223344556677\"}}}", "'files.meta.json'")]
    public void Open_MalformedChecksumsFile_ThrowsNamingFileAndField(string json, string expected)
    {
        StoreTestData.WriteAll(Dir("s"), StoreTestData.Meta(37, 13)).Dispose();
        string path = Path.Combine(Dir("s"), StoreFiles.Checksums);
        File.WriteAllText(path, json);
        var before = Directory.GetFiles(Dir("s")).Order().Select(File.ReadAllBytes).ToList();

        var e = Assert.Throws<StoreFormatException>(() => FeatureStore.Open(Dir("s")))!;

        Assert.That(e.Message, Does.StartWith(path).And.Contain(expected));
        Assert.That(Directory.GetFiles(Dir("s")).Order().Select(File.ReadAllBytes).ToList(), Is.EqualTo(before), "nothing written");
    }

    [Test]
    public void Merge_ShardChangedOutsideTheSampledChunks_RefusedNamingTheShardRows()
    {
        StoreTestData.WriteAll(Dir("a"), StoreTestData.Meta(WideRows * 2, WideDim, shard: new ShardSpec(0, 2)), batch: 64).Dispose();
        StoreTestData.WriteAll(Dir("b"), StoreTestData.Meta(WideRows * 2, WideDim, shard: new ShardSpec(1, 2)), batch: 64).Dispose();
        PokeRow(Dir("b"), 300, WideDim, 0.125f); // local row 300 of shard 1: dataset row 900, in its middle chunk

        var e = Assert.Throws<StoreFormatException>(() => FeatureStoreMerge.Merge([Dir("a"), Dir("b")], Dir("merged")))!;

        Assert.That(e.Message, Does.Contain(FeaturesPath(Dir("b"))).And.Contain("rows 856–1111"));
    }

    [Test]
    public void Json_WrittenFile_HasTheDocumentedFields()
    {
        StoreTestData.WriteAll(Dir("s"), StoreTestData.Meta(37, 13)).Dispose();
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir("s"), StoreFiles.Checksums)));
        var root = doc.RootElement;
        Assert.That(root.EnumerateObject().Select(p => p.Name), Is.EqualTo(new[] { "formatVersion", "algorithm", "chunkRows", "rows", "featureChunks", "files" }));
        Assert.That(root.GetProperty("featureChunks")[0].GetString(), Has.Length.EqualTo(16));
    }

    [Test]
    public void Json_WithAnEightBitCopy_AddsQuantizedFromAndItsFiles()
    {
        StoreTestData.WriteAll(Dir("q"), StoreTestData.Meta(37, 13)).Dispose();
        StoreQuantizer.Quantize(Dir("q"));
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir("q"), StoreFiles.Checksums)));
        var root = doc.RootElement;
        Assert.That(root.EnumerateObject().Select(p => p.Name),
            Is.EqualTo(new[] { "formatVersion", "algorithm", "chunkRows", "rows", "featureChunks", "files", "quantizedFrom" }));
        Assert.That(root.GetProperty("quantizedFrom").GetString(), Has.Length.EqualTo(16));
        Assert.That(root.GetProperty("files").EnumerateObject().Select(p => p.Name), Is.SupersetOf(new[] { StoreFiles.QuantizedFeatures, StoreFiles.QuantizedScales }));
    }
}
