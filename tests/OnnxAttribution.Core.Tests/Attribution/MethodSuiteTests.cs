using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;

namespace OnnxAttribution.Core.Tests.Attribution;

/// <summary>
/// Every registered method on one toy problem with a known answer: a tiny U-Net, 40 embedded training images, and queries
/// that are copies of training images (planted duplicates). A method that cannot find the copy among the top three has a
/// bug. Checked in their own tests instead: the ensemble (its store is trained), TracIn/ReTrac (they need saved training
/// checkpoints; TracInTests queries training images on trained checkpoints) and the random baseline (no right answer).
/// </summary>
[TestFixture]
public sealed class MethodSuiteTests
{
    private const int Rows = 40;
    private static readonly int[] Planted = [3, 17, 31];
    private string _dir = "";
    private string _model = "";
    private ImageDataset _data = null!;

    /// <summary>Methods tested here: every registered one except those that need their own training or have no answer.</summary>
    public static IEnumerable<string> Methods() =>
        AttributionMethods.All.Select(m => m.Name).Where(n => n is not "ensemble" and not "random" and not "tracin" and not "retrac");

    [OneTimeSetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("oa-suite-").FullName;
        _model = Path.Combine(_dir, "model");
        TinyModelFixture.CopyTo(_model);
        _data = new DatasetLocator().Load("embedded", $"0:{Rows}", null);
    }

    [OneTimeTearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [TestCaseSource(nameof(Methods))]
    public void PlantedDuplicate_RanksItsTrainingImageInTopThree(string name)
    {
        var method = AttributionMethods.Find(name);
        var store = Path.Combine(_dir, name);
        method.Build(new MethodBuildRequest
        {
            ModelDirectory = _model,
            Data = _data,
            Source = new StoreSource(_model, "embedded", $"0:{Rows}", 16),
            OutDirectory = store,
            Settings = new MethodSettings { Timesteps = 3, Dim = 1024, JourneySteps = 3, BatchSize = 8, },
        });
        Assert.That(MethodManifest.TryLoad(store)?.Method ?? AttributionMethods.MethodOf(store).Name, Is.EqualTo(name));
        if (method is IDampedMethod damped)
        {
            Assert.That(MethodManifest.Require(store, name).Settings["damping"]!.GetValue<double>(), Is.EqualTo(damped.DefaultDamping), "no damping given: the method's own default");
        }
        using var scorer = AttributionMethods.Open(store);
        Assert.That(scorer.Rows, Is.EqualTo(Rows));
        var queries = Planted.Select(i => new AttributionQuery($"row {i}", _data.Image(i).ToArray())).ToList();
        var scores = scorer.Scores(queries);
        Assert.That(scores, Has.Length.EqualTo(Planted.Length * Rows));
        Assert.That(scores.All(float.IsFinite), Is.True, "every score is a number");
        var top = scorer.TopK(queries, 3);
        for (int q = 0; q < Planted.Length; q++)
        {
            Assert.That(top[q].Indices, Does.Contain((long)Planted[q]), $"{name}: query = training row {Planted[q]}; top 3 were {string.Join(", ", top[q].Indices)}");
        }
    }

    [Test]
    public void Registry_NamesAreUniqueAndFindable()
    {
        var names = AttributionMethods.All.Select(m => m.Name).ToList();
        Assert.That(names, Is.Unique);
        Assert.That(names, Does.Contain("trak").And.Contain("d-trak"));
        Assert.That(names.All(n => AttributionMethods.Find(n.ToUpperInvariant()).Name == n), Is.True);
        Assert.Throws<Primitives.UserInputException>(() => AttributionMethods.Find("no-such-method"));
        Assert.That(AttributionMethods.All.All(m => m.Summary.Length > 10), Is.True, "every method says what it does");
    }
}
