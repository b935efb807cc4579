using OnnxAttribution.Cluster.Featurize;
using OnnxAttribution.Primitives;
using OnnxAttribution.Cluster.Silo;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;
using Orleans.TestingHost;

namespace OnnxAttribution.Cluster.Tests;

/// <summary>
/// A D-TRAK featurization of 96 embedded images across a 3-silo test cluster, one silo stopped while it runs an item,
/// against the same featurization on one machine: every file of the merged store must equal the single run's, byte for byte.
/// </summary>
[TestFixture]
[Category("Slow")]
public sealed class ClusterFeaturizeTests : TempDirectoryTest
{
    private const string Subset = "0:96";
    private const int Timesteps = 2, Dim = 256, BatchSize = 4, Items = 3;

    private string Model => Path.Combine(RepositoryRoot(), "models", "fm16");

    private FeaturizeJob Job(string work) => new()
    {
        ModelDirectory = Model,
        Subset = Subset,
        Method = "d-trak",
        Timesteps = Timesteps,
        Dim = Dim,
        DType = StoreDType.Float16,
        BatchSize = BatchSize,
        Items = Items,
        WorkDirectory = work,
        LeaseTimeout = TimeSpan.FromSeconds(3),
    };

    [Test]
    public async Task Featurize_SiloStoppedMidItem_ItemRunsElsewhereAndMergedStoreEqualsSingleMachine()
    {
        string reference = Path.Combine(TempDir, "single", "store");
        SingleMachine(reference);

        await using var cluster = await TestSilos.StartAsync(3, new AttributionSiloOptions { PollInterval = TimeSpan.FromMilliseconds(100) });
        string merged = Path.Combine(TempDir, "cluster", "store");
        SiloHandle? stopped = null;
        Task? stopping = null;
        string last = "";
        var progress = new SyncProgress<FeaturizeProgress>(p =>
        {
            if (p.Describe() != last)
            {
                TestContext.Progress.WriteLine(last = p.Describe());
            }
            // Stop a secondary silo (the primary holds the test cluster's membership table) while its item is half done.
            var victim = p.Items.FirstOrDefault(i => i.State == ItemState.Running && i.RowsDone > 0 && i.RowsDone < i.Rows
                && !i.Worker!.StartsWith(cluster.Primary!.Name + "@", StringComparison.Ordinal));
            if (stopped is null && victim is not null)
            {
                stopped = cluster.SecondarySilos.Single(s => victim.Worker!.StartsWith(s.Name + "@", StringComparison.Ordinal));
                TestContext.Progress.WriteLine($"stopping {stopped.Name} at item {victim.Item}, {victim.RowsDone}/{victim.Rows} rows");
                stopping = cluster.StopSiloAsync(stopped);
            }
        });
        var result = await ClusterFeaturizer.RunAsync(cluster.Client, Job(Path.Combine(TempDir, "work")), merged, progress,
            TimeSpan.FromMilliseconds(100)).WaitAsync(TimeSpan.FromMinutes(4));
        await stopping!;

        Assert.That(stopped, Is.Not.Null, "no silo was stopped mid-item");
        string report = result.Describe() + "\n" + string.Join("\n", result.Items.Select(i => $"item {i.Item}: {i.Leases} leases, last {i.Worker}, {i.LastError}"));
        TestContext.Progress.WriteLine(report);
        Assert.That(result.Reassigned, Is.InRange(1, 2), report);
        Assert.That(result.Items.Where(i => i.Leases > 1).Select(i => i.Worker), Has.None.StartsWith(stopped!.Name + "@"), report);
        AssertSameFiles(reference, merged);
    }

    [Test]
    public async Task Featurize_WorkFolderAlreadyComplete_NothingRunsAgain()
    {
        await using var cluster = await TestSilos.StartAsync(1, new AttributionSiloOptions { PollInterval = TimeSpan.FromMilliseconds(100) });
        var job = Job(Path.Combine(TempDir, "work")) with { Subset = "0:12", Items = 3 };
        await ClusterFeaturizer.RunAsync(cluster.Client, job, Path.Combine(TempDir, "first"), pollInterval: TimeSpan.FromMilliseconds(100));

        // A new job object with the same settings: the coordinator takes it as new and finds every item done on disk.
        await using var second = await TestSilos.StartAsync(1, new AttributionSiloOptions { Featurize = false });
        var again = await ClusterFeaturizer.RunAsync(second.Client, job, Path.Combine(TempDir, "second"), pollInterval: TimeSpan.FromMilliseconds(100))
            .WaitAsync(TimeSpan.FromSeconds(30));

        Assert.That(again.Items.Select(i => i.Leases), Is.All.EqualTo(0));
        AssertSameFiles(Path.Combine(TempDir, "first"), Path.Combine(TempDir, "second"));
    }

    [Test]
    public void Prepare_MoreItemsThanRows_NamesTheOption()
    {
        var e = Assert.Throws<UserInputException>(() => ClusterFeaturizer.Prepare(Job(TempDir) with { Subset = "0:4", Items = 5 }));
        Assert.That(e!.Message, Does.Contain("--items 5").And.Contain("1 to 4"));
    }

    /// <summary>The CLI's featurize, as FeaturizeCommand builds its options, then its source.json.</summary>
    private void SingleMachine(string store)
    {
        var model = ModelDirectory.Open(Model);
        var data = new DatasetLocator().Load("embedded", Subset, model.Metadata.ImageSize);
        var options = new FeaturizeOptions
        {
            ModelDirectory = Model,
            Data = data,
            Subset = Subset,
            Plan = new FeaturizationPlan(FeaturizationPlan.Evenly(model.CreateSchedule().Timesteps, Timesteps), 1, 0, MeasurementKind.Square),
            Projection = new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, Dim, 0),
            DType = StoreDType.Float16,
            Method = "d-trak",
            OutDirectory = store,
            BatchSize = BatchSize,
        };
        using (TrakEngine.Featurize(options))
        {
        }
        new StoreSource(Model, "embedded", Subset, model.Metadata.ImageSize).Save(store);
    }

    private static void AssertSameFiles(string expectedDir, string actualDir)
    {
        var names = Directory.GetFiles(expectedDir).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Assert.That(Directory.GetFiles(actualDir).Select(Path.GetFileName).Order(StringComparer.Ordinal), Is.EqualTo(names));
        Assert.That(names, Does.Contain(StoreFiles.Features).And.Contain(StoreFiles.Meta).And.Contain(StoreFiles.Source));
        // history.json records how and when the store was made (merged here, featurized there): it differs by design;
        // its chain must hold.
        foreach (var name in names.Where(n => n != StoreFiles.History))
        {
            Assert.That(File.ReadAllBytes(Path.Combine(actualDir, name!)), Is.EqualTo(File.ReadAllBytes(Path.Combine(expectedDir, name!))), name);
        }
        Assert.That(StoreHistory.TryLoad(actualDir)!.Verify(actualDir), Is.Empty);
    }
}
