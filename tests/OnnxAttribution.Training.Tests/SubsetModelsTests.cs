using OnnxAttribution.Primitives;
using OnnxAttribution.Training.Evaluation;

namespace OnnxAttribution.Training.Tests;

[TestFixture]
public sealed class SubsetModelsTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("oa-subsets-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    /// <summary>A fake trainer: writes the model.json a finished export leaves, and counts.</summary>
    private int Train(int models, int seeds, List<SubsetModel>? trained = null, bool legacy = false) =>
        SubsetModels.TrainMissing(SubsetModels.Plan(_dir, 7, models, seeds, legacy), (_, m) =>
        {
            Directory.CreateDirectory(m.Directory);
            File.WriteAllText(Path.Combine(m.Directory, "model.json"), "{}");
            trained?.Add(m);
        });

    [Test]
    public void TrainMissing_GrowingSeedsThenSubsets_TrainsOnlyTheNewModels()
    {
        Assert.That(Train(models: 2, seeds: 1), Is.EqualTo(2));
        var grown = new List<SubsetModel>();
        Assert.That(Train(models: 2, seeds: 3, grown), Is.EqualTo(4), "2 subsets × 2 new seeds");
        Assert.That(grown.All(m => m.SeedIndex > 0), Is.True);
        Assert.That(Train(models: 3, seeds: 3), Is.EqualTo(3), "one new subset × 3 seeds");
        Assert.That(Train(models: 3, seeds: 3), Is.EqualTo(0), "all there");
    }

    [Test]
    public void Plan_NamesAndSeeds_FromRunSeedSubsetAndSeedIndexOnly()
    {
        var small = SubsetModels.Plan(_dir, 7, 2, 2, legacySeedZero: false);
        var large = SubsetModels.Plan(_dir, 7, 5, 3, legacySeedZero: false);
        var m = small.Single(x => x.Subset == 1 && x.SeedIndex == 1);
        Assert.That(large.Single(x => x.Subset == 1 && x.SeedIndex == 1), Is.EqualTo(m), "independent of M and S");
        Assert.That(Path.GetFileName(m.Directory), Is.EqualTo("model-001-seed-1"));
        Assert.That(Path.GetFileName(small.Single(x => x.Subset == 1 && x.SeedIndex == 0).Directory), Is.EqualTo("model-001"));
        Assert.That(m.RunDirectory, Is.EqualTo(m.Directory + "-run"));
        Assert.That(m.TrainingSeed, Is.EqualTo(SeedStreams.Derive(7, SubsetModels.SeedStream, 1, 1)));
        Assert.That(large.Select(x => x.TrainingSeed).Distinct().Count(), Is.EqualTo(15));
        Assert.That(small.Select(x => x.SeedIndex), Is.EqualTo(new[] { 0, 0, 1, 1 }), "seed-major: every subset's seed 0 first");
    }

    [Test]
    public void TrainingSeed_LegacyRun_SeedZeroKeepsTheOldSeed_LaterSeedsNamed()
    {
        Assert.That(SubsetModels.TrainingSeed(2, 5, 0, legacySeedZero: true), Is.EqualTo((2 * 1_000_003) + 5 + 1));
        Assert.That(SubsetModels.TrainingSeed(2, 5, 1, legacySeedZero: true), Is.EqualTo(SubsetModels.TrainingSeed(2, 5, 1, legacySeedZero: false)));
        Assert.That(SubsetModels.TrainingSeed(2, 5, 0, legacySeedZero: false), Is.EqualTo(SeedStreams.Derive(2, SubsetModels.SeedStream, 5, 0)));
    }
}
