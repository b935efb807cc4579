namespace OnnxAttribution.Store.Tests;

public sealed class StoreMetaTests
{
    [Test]
    public void ToJson_FromJson_RoundTripsWithCamelCaseNames()
    {
        var meta = StoreTestData.Meta(10, 8, StoreDType.Float16, new ShardSpec(1, 3));
        string json = meta.ToJson();
        var back = StoreMeta.FromJson(json, "meta.json");
        Assert.Multiple(() =>
        {
            Assert.That(back, Is.EqualTo(meta));
            Assert.That(back.Timesteps, Is.EqualTo(new long[] { 100, 500, 900 }));
            Assert.That(json, Does.Contain("\"formatVersion\": 1").And.Contain("\"modelFingerprint\"").And.Contain("\"dtype\": \"float16\"")
                .And.Contain("\"noiseDraws\": 2").And.Contain("\"shard\": {").And.Contain("\"datasetFingerprint\"").And.Contain("\"blockRows\": \"256\""));
            Assert.That(json, Does.Not.Contain("firstRow").And.Not.Contain("shardRows"));
        });
    }

    [Test]
    public void ToJson_SettingsInAnyInsertionOrder_SameBytes()
    {
        var a = StoreTestData.Meta(10, 8) with { Settings = new Dictionary<string, string> { ["b"] = "2", ["a"] = "1" } };
        var b = StoreTestData.Meta(10, 8) with { Settings = new Dictionary<string, string> { ["a"] = "1", ["b"] = "2" } };
        Assert.That(a.ToJson(), Is.EqualTo(b.ToJson()));
        Assert.That(a, Is.EqualTo(b));
    }

    [Test]
    public void DescribeDifferences_EqualMetas_Empty()
    {
        Assert.That(StoreTestData.Meta(10, 8).DescribeDifferences(StoreTestData.Meta(10, 8)), Is.Empty);
    }

    [Test]
    public void DescribeDifferences_EveryField_ListedWithBothValues()
    {
        var store = StoreTestData.Meta(10, 8);
        var query = store with
        {
            ModelFingerprint = new string('b', 64),
            Method = "d-trak",
            Measurement = "squared-output-norm",
            Timesteps = [100, 500],
            NoiseDraws = 3,
            NoiseSeed = 8,
            Projector = new ProjectorSpec("gaussian", 43, 16) { Settings = new Dictionary<string, string> { ["blockRows"] = "128" } },
            DType = StoreDType.Float16,
            Rows = 11,
            DatasetFingerprint = "e",
            Subset = null,
            Shard = new ShardSpec(0, 2),
            Settings = new Dictionary<string, string> { ["other"] = "x" },
        };
        var diffs = store.DescribeDifferences(query);
        Assert.That(diffs, Is.EqualTo(new[]
        {
            $"modelFingerprint: store has \"{new string('a', 64)}\", query asks \"{new string('b', 64)}\"",
            "method: store has \"trak\", query asks \"d-trak\"",
            "measurement: store has \"diffusion-loss\", query asks \"squared-output-norm\"",
            "timesteps: store has [100, 500, 900], query asks [100, 500]",
            "noiseDraws: store has 2, query asks 3",
            "noiseSeed: store has 7, query asks 8",
            "projector.kind: store has \"rademacher\", query asks \"gaussian\"",
            "projector.seed: store has 42, query asks 43",
            "projector.dim: store has 8, query asks 16",
            "projector.settings.blockRows: store has \"256\", query asks \"128\"",
            "dtype: store has float32, query asks float16",
            "rows: store has 10, query asks 11",
            $"datasetFingerprint: store has \"{new string('d', 64)}\", query asks \"e\"",
            "subset: store has \"all\", query asks null",
            "shard: store has 0 of 1, query asks 0 of 2",
            "settings.checkpoint: store has \"final\", query asks nothing",
            "settings.other: store has nothing, query asks \"x\"",
        }));
        Assert.That(store, Is.Not.EqualTo(query));
    }

    [Test]
    public void FromJson_UnknownVersionOrField_Throws()
    {
        string json = StoreTestData.Meta(10, 8).ToJson();
        var e = Assert.Throws<StoreFormatException>(() => StoreMeta.FromJson(json.Replace("\"formatVersion\": 1", "\"formatVersion\": 2"), "m.json"))!;
        Assert.That(e.Message, Does.Contain("m.json").And.Contain("'formatVersion': expected 1, found 2"));
        Assert.Throws<StoreFormatException>(() => StoreMeta.FromJson(json.Replace("\"noiseDraws\"", "\"noiseDrawz\""), "m.json"));
        Assert.Throws<StoreFormatException>(() => StoreMeta.FromJson(json.Replace("\"method\": \"trak\",", ""), "m.json"));
        Assert.Throws<StoreFormatException>(() => StoreMeta.FromJson("{", "m.json"));
    }

    [TestCase(10, 1, 0, 0, 10)]
    [TestCase(10, 3, 0, 0, 3)]
    [TestCase(10, 3, 1, 3, 3)]
    [TestCase(10, 3, 2, 6, 4)]
    [TestCase(2, 3, 0, 0, 0)]
    [TestCase(3_000_000_000_000, 7, 6, 2_571_428_571_428, 428_571_428_572)]
    public void ShardSpec_ContiguousBlocks_FloorOfNiOverCount(long n, int count, int index, long first, long rows)
    {
        var shard = new ShardSpec(index, count);
        Assert.That((shard.FirstRow(n), shard.RowCount(n)), Is.EqualTo((first, rows)));
    }
}
