using OnnxAttribution.Cluster.Serving;
using OnnxAttribution.Cluster.Silo;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;
using OnnxAttribution.Server;
using Orleans.TestingHost;

namespace OnnxAttribution.Cluster.Tests;

/// <summary>
/// A D-TRAK store of 90 rows in 3 shards served by a 3-silo test cluster: store "replicated" has each shard on two silos,
/// store "single" on one. Answers are compared row by row and score by score with the single-machine scan of the merged store.
/// </summary>
[TestFixture]
[Category("Slow")]
public sealed class ClusterServeTests : TempDirectoryTest
{
    private const int Shards = 3, Top = 7;
    private string _dir = "";
    private string _model = "";
    private string _merged = "";
    private string _head = "";
    private readonly List<string> _shards = [];
    private TestCluster _cluster = null!;
    private List<AttributionQuery> _queries = null!;

    [OneTimeSetUp]
    public async Task ServeStore()
    {
        _dir = Directory.CreateTempSubdirectory("oa-cluster-serve-").FullName;
        _model = Path.Combine(RepositoryRoot(), "models", "fm16");
        var model = ModelDirectory.Open(_model);
        var data = new DatasetLocator().Load("embedded", "0:90", 16);
        for (int i = 0; i < Shards; i++)
        {
            _shards.Add(Path.Combine(_dir, $"shard{i}"));
            var options = new FeaturizeOptions
            {
                ModelDirectory = _model,
                Data = data,
                Subset = "0:90",
                Plan = new FeaturizationPlan(FeaturizationPlan.Evenly(model.CreateSchedule().Timesteps, 2), 1, 0, MeasurementKind.Square),
                Projection = new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, 64, 0),
                Method = "d-trak",
                OutDirectory = _shards[i],
                Shard = new ShardSpec(i, Shards),
            };
            using (TrakEngine.Featurize(options))
            {
            }
        }
        _merged = Path.Combine(_dir, "merged");
        using (FeatureStoreMerge.Merge(_shards, _merged))
        {
        }
        // k = 64 < N = 90: the primal kernel, one scan per row.
        PreconditionerBuilder.Finalize(_merged, 0.1);
        // The head holds the merged store's small files only: no features.npy, no done.bitmap.
        _head = CopyFiles(_merged, Path.Combine(_dir, "head"), StoreFiles.Meta, StoreFiles.Preconditioner, StoreFiles.Checksums);
        var queryImages = new DatasetLocator().Load("embedded", "200:208", 16);
        _queries = Enumerable.Range(0, queryImages.Count).Select(i => new AttributionQuery($"image {200 + i}", queryImages.Image(i).ToArray())).ToList();
        _cluster = await StartAsync();
    }

    private static string CopyFiles(string from, string to, params string[] names)
    {
        Directory.CreateDirectory(to);
        foreach (string name in names)
        {
            File.Copy(Path.Combine(from, name), Path.Combine(to, name));
        }
        return to;
    }

    private Task<TestCluster> StartAsync() =>
        TestSilos.StartAsync(3, new AttributionSiloOptions { Featurize = false, Serves = Served, RegisterInterval = TimeSpan.FromMilliseconds(200) });

    /// <summary>Silo j serves shard j of both stores, and shard j+1 of "replicated".</summary>
    private IReadOnlyList<ServedShard> Served(string silo)
    {
        int j = silo == "Primary" ? 0 : int.Parse(silo["Secondary_".Length..], System.Globalization.CultureInfo.InvariantCulture);
        return [new ServedShard("single", _shards[j]), new ServedShard("replicated", _shards[j]), new ServedShard("replicated", _shards[(j + 1) % Shards])];
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        await _cluster.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private TopKResult[] SingleMachine()
    {
        using var scorer = TrakScorer.Open(_merged, _model);
        return scorer.Attribute(TrakMethod.Images(_queries), _queries.Count, Top);
    }

    private Task<ClusterAnswer> AskAsync(string store) => AskAsync(_cluster, store);

    private async Task<ClusterAnswer> AskAsync(TestCluster cluster, string store)
    {
        using var query = ClusterQuery.Open(cluster.Client, store, _model, _head, shardTimeout: TimeSpan.FromSeconds(5));
        // The silos register every 200 ms: wait until all three shards are known.
        for (int i = 0; i < 50 && (await cluster.Client.GetGrain<IShardRegistryGrain>(store).GetAsync()).Select(r => r.Shard).Distinct().Count() < Shards; i++)
        {
            await Task.Delay(100);
        }
        return await query.AttributeAsync(_queries, Top);
    }

    private static void AssertSame(ClusterAnswer answer, TopKResult[] expected)
    {
        Assert.That(answer.Rankings, Has.Count.EqualTo(expected.Length));
        for (int q = 0; q < expected.Length; q++)
        {
            Assert.That(answer.Rankings[q].Top.Select(r => r.Index), Is.EqualTo(expected[q].Indices), $"query {q} rows");
            Assert.That(answer.Rankings[q].Top.Select(r => r.Score), Is.EqualTo(expected[q].Scores), $"query {q} scores");
        }
    }

    [Test]
    public async Task Attribute_AllSilosUp_RowsAndScoresEqualTheSingleMachineScan()
    {
        var expected = SingleMachine();
        foreach (var store in new[] { "single", "replicated" })
        {
            var answer = await AskAsync(store);
            Assert.That(answer.Complete, Is.True, string.Join("; ", answer.Missing));
            AssertSame(answer, expected);
            Assert.That(answer.Answered.Select(a => a.Shard).Order(), Is.EqualTo(new[] { 0, 1, 2 }));
        }
    }

    [Test]
    public async Task Attribute_SiloStopped_ReplicaAnswersOrTheMissingRowsAreNamed()
    {
        var expected = SingleMachine();
        // A cluster of its own: the other test's cluster keeps its three silos.
        await using var cluster = await StartAsync();
        Assert.That((await AskAsync(cluster, "single")).Complete, Is.True);
        await cluster.StopSiloAsync(cluster.SecondarySilos.Single(s => s.Name == "Secondary_1"));

        var replicated = await AskAsync(cluster, "replicated");
        Assert.That(replicated.Complete, Is.True, string.Join("; ", replicated.Missing));
        AssertSame(replicated, expected);
        Assert.That(replicated.Answered.Single(a => a.Shard == 1).SiloName, Is.EqualTo("Primary"));

        var single = await AskAsync(cluster, "single");
        Assert.That(single.Missing.Select(m => (m.Shard, m.FirstRow, m.Rows)), Is.EqualTo(new[] { (1, 30L, 30L) }));
        foreach (var ranking in single.Rankings)
        {
            Assert.That(ranking.Top.Select(r => r.Index), Has.None.InRange(30L, 59L));
            Assert.That(ranking.Top, Has.Count.EqualTo(Top));
        }
    }

    [Test]
    public void Open_HeadWithoutChecksums_IsRefusedNamingTheFile()
    {
        // Without features.npy, checksums.json is all that ties preconditioner.bin to the store: a head without it is refused.
        string bare = CopyFiles(_merged, Path.Combine(_dir, "bare-head"), StoreFiles.Meta, StoreFiles.Preconditioner);
        var e = Assert.Throws<StoreFormatException>(() => ClusterQuery.Open(_cluster.Client, "single", _model, bare).Dispose());
        Assert.That(e!.Message, Does.Contain(Path.Combine(bare, StoreFiles.Checksums)).And.Contain("missing"));
    }

    [Test]
    public void Open_HeadWithADamagedPreconditioner_IsRefusedByItsChecksum()
    {
        string damaged = CopyFiles(_merged, Path.Combine(_dir, "damaged-head"), StoreFiles.Meta, StoreFiles.Preconditioner, StoreFiles.Checksums);
        string path = Path.Combine(damaged, StoreFiles.Preconditioner);
        var bytes = File.ReadAllBytes(path);
        bytes[^9] ^= 0x10;  // a bit of the factor's last entry: still finite, so only the checksum can tell
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<StoreFormatException>(() => ClusterQuery.Open(_cluster.Client, "single", _model, damaged).Dispose());
        Assert.That(e!.Message, Does.Contain(path));
    }

    [Test]
    public async Task Attribute_AReplicaOfAnotherFeaturization_IsNotAskedAndItsRowsAreMissing()
    {
        await WaitForShardsAsync(_cluster, "single");
        var real = await _cluster.Client.GetGrain<IShardRegistryGrain>("single").GetAsync();
        // Store "mixed": shards 0 and 2 as served, shard 1 registered with another featurization's settings.
        foreach (var replica in real)
        {
            await _cluster.Client.GetGrain<IShardRegistryGrain>("mixed").RegisterAsync(replica with
            {
                Store = "mixed",
                Settings = replica.Shard == 1 ? new string('0', 64) : replica.Settings,
            });
        }
        using var query = ClusterQuery.Open(_cluster.Client, "mixed", _model, _head);
        var answer = await query.AttributeAsync(_queries.Take(2).ToList(), Top);
        Assert.That(answer.Missing.Select(m => (m.Shard, m.FirstRow, m.Rows)), Is.EqualTo(new[] { (1, 30L, 30L) }));
        Assert.That(answer.Missing[0].Reason, Does.Contain("meta.json differs from the head's"));
        Assert.That(answer.Answered.Select(a => a.Shard), Is.EqualTo(new[] { 0, 2 }));
    }

    /// <summary>Waits until the registry of <paramref name="store"/> knows a replica of every shard (silos register every 200 ms).</summary>
    private static async Task WaitForShardsAsync(TestCluster cluster, string store)
    {
        for (int i = 0; i < 50 && (await cluster.Client.GetGrain<IShardRegistryGrain>(store).GetAsync()).Select(r => r.Shard).Distinct().Count() < Shards; i++)
        {
            await Task.Delay(100);
        }
    }

    [Test]
    public async Task Server_ClusterStore_AnswersAPngAsTheSingleMachineServerDoes()
    {
        await WaitForShardsAsync(_cluster, "single");
        await using var server = await ClusterServer.StartAsync(_cluster, _model, _head, _merged, "single");
        foreach (int q in new[] { 0, 5 })
        {
            var png = ClusterServer.Png(_dir, _queries[q].Image);
            var local = (await server.AttributeAsync(ClusterServer.Local, png, Top)).Rankings.Single().Top;
            var answer = await server.AttributeAsync("single", png, Top);
            var cluster = answer.Rankings.Single().Top;
            Assert.That(cluster.Select(r => r.Index), Is.EqualTo(local.Select(r => r.Index)), $"query {q} rows");
            Assert.That(cluster.Select(r => r.Score), Is.EqualTo(local.Select(r => r.Score)), $"query {q} scores");
            Assert.That(answer.Partial, Is.False);
            Assert.That(answer.Missing, Is.Not.Null.And.Empty);
            Assert.That(answer.Timings.StagesMs.Keys, Is.SupersetOf(new[] { "features", "solve", ClusterQuery.FanOutStage }));
        }
    }

    [Test]
    public async Task Server_ClusterStoreWithASiloStopped_AnswersPartialNamingTheMissingRows()
    {
        await using var cluster = await StartAsync();
        await WaitForShardsAsync(cluster, "single");
        await WaitForShardsAsync(cluster, "replicated");
        await cluster.StopSiloAsync(cluster.SecondarySilos.Single(s => s.Name == "Secondary_1"));
        await using var server = await ClusterServer.StartAsync(cluster, _model, _head, _merged, "single", "replicated");
        var png = ClusterServer.Png(_dir, _queries[3].Image);
        // Every row of the merged store, ranked: the partial answer must be its top rows outside shard 1.
        var all = (await server.AttributeAsync(ClusterServer.Local, png, 90)).Rankings.Single().Top;

        var replicated = await server.AttributeAsync("replicated", png, Top);
        Assert.That(replicated.Partial, Is.False, string.Join("; ", replicated.Missing ?? []));
        Assert.That(replicated.Rankings.Single().Top.Select(r => (r.Index, r.Score)), Is.EqualTo(all.Take(Top).Select(r => (r.Index, r.Score))));

        var single = await server.AttributeAsync("single", png, Top);
        Assert.That(single.Partial, Is.True);
        Assert.That(single.Missing!.Select(m => (m.Shard, m.FirstRow, m.Rows)), Is.EqualTo(new[] { (1, 30L, 30L) }));
        // The registry drops a dead silo's replicas: the reason says none is left (or each replica's error, while it still lists them).
        Assert.That(single.Missing![0].Reason, Does.Contain("no replica registered").Or.Contain("Secondary_1"));
        var expected = all.Where(r => r.Index is < 30 or > 59).Take(Top).Select(r => (r.Index, r.Score));
        Assert.That(single.Rankings.Single().Top.Select(r => (r.Index, r.Score)), Is.EqualTo(expected));
    }

    [Test]
    public void Server_ClusterStoreNoSiloServes_DoesNotStartAndSaysWhy()
    {
        // The warm-up asks the cluster: a store no shard answers for stops the start (exit 2) rather than serving nothing.
        var options = new ServerOptions([new StoreSpec("nobody", _head, Cluster: true)], _model, "http://127.0.0.1:0", SessionSettings.Default) { ClusterGrains = _cluster.Client };
        var e = Assert.Throws<ClusterUnavailableException>(() => ServerApp.Build(options));
        Assert.That(e!.Message, Does.Contain("store 'nobody': no shard answered").And.Contain("onnx-attribution-cluster silo --serve nobody=FOLDER"));
    }

    [Test]
    public void ClusterScorer_NoShardServesTheStore_ThrowsNamingTheStoreAndWhy()
    {
        using var scorer = ClusterScorer.Open(_cluster.Client, "nobody", _model, _head);
        var e = Assert.Throws<ClusterUnavailableException>(() => scorer.TopK(_queries.Take(1).ToList(), Top));
        Assert.That(e!.Message, Does.Contain("store 'nobody'").And.Contain("no replica registered"));
        Assert.That(scorer.LastAnswer, Is.Null);
    }
}
