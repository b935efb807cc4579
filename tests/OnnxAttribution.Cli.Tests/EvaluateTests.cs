using System.Text.Json.Nodes;

namespace OnnxAttribution.Cli.Tests;

/// <summary>
/// 'evaluate lds' and 'evaluate counterfactual' end to end at toy size (a few models trained for a few steps): the
/// files a user reads are written, reruns continue from what is saved, and changed settings are refused by name.
/// </summary>
[TestFixture]
[NonParallelizable] // redirects the process's console
public sealed class EvaluateTests
{
    private string _dir = "";
    private TextWriter _out = null!;
    private TextWriter _err = null!;
    private StringWriter _stderr = null!;

    [OneTimeSetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("oa-eval-").FullName;
        (_out, _err) = (Console.Out, Console.Error);
        _stderr = new StringWriter();
        Console.SetOut(new StringWriter());
        Console.SetError(_stderr);
        _firstRun = CliApp.Run(Lds());
    }

    private int _firstRun;

    [OneTimeTearDown]
    public void TearDown()
    {
        Console.SetOut(_out);
        Console.SetError(_err);
        _stderr.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private string[] Lds(string alpha = "0.5") =>
    [
        "evaluate", "lds", "--subset", "0:24", "--subset-models", "3", "--alpha", alpha, "--steps", "8", "--batch-size", "8",
        "--queries", "2", "--methods", "trak", "--measure-timesteps", "4", "--measure-draws", "1", "--timesteps", "2", "--dim", "64",
        "--sampling-steps", "4", "--out", Path.Combine(_dir, "lds"),
    ];

    [Test]
    public void Lds_ToySize_WritesResultsAndRerunsFromSavedFiles()
    {
        Assert.That(_firstRun, Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var lds = Path.Combine(_dir, "lds");
        var result = JsonNode.Parse(File.ReadAllText(Path.Combine(lds, "lds.json")))!;
        Assert.That(result["subsetModels"]!.GetValue<int>(), Is.EqualTo(3));
        Assert.That(result["methods"]![0]!["method"]!.GetValue<string>(), Is.EqualTo("trak"));
        Assert.That(result["methods"]![0]!["perQuery"]!.AsArray(), Has.Count.EqualTo(2));
        Assert.That(File.Exists(Path.Combine(lds, "queries.png")), Is.True);
        Assert.That(Directory.GetDirectories(Path.Combine(lds, "subsets"), "model-*").Count(d => !d.EndsWith("-run", StringComparison.Ordinal)), Is.EqualTo(3));
        var scores = Path.Combine(lds, "scores", "trak.npy");
        var stamp = File.GetLastWriteTimeUtc(scores);
        var model = File.GetLastWriteTimeUtc(Path.Combine(lds, "subsets", "model-000", "forward.onnx"));

        Assert.That(CliApp.Run(Lds()), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(File.GetLastWriteTimeUtc(scores), Is.EqualTo(stamp), "scores are reused");
        Assert.That(File.GetLastWriteTimeUtc(Path.Combine(lds, "subsets", "model-000", "forward.onnx")), Is.EqualTo(model), "models are reused");
        Assert.That(JsonNode.Parse(File.ReadAllText(Path.Combine(lds, "lds.json")))!["methods"]![0]!["lds"]!.GetValue<double>(),
            Is.EqualTo(result["methods"]![0]!["lds"]!.GetValue<double>()));
    }

    [Test]
    public void Lds_OtherSettingsSameFolder_RefusedNamingTheField()
    {
        Assert.That(CliApp.Run(Lds(alpha: "0.25")), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("settings.json").And.Contain("'alpha'"));
    }

    [Test]
    public void Counterfactual_ToySize_RetrainsAndWritesBeforeAfter()
    {
        Assert.That(_firstRun, Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var cf = Path.Combine(_dir, "cf");
        int code = CliApp.Run(["evaluate", "counterfactual", "--store", Path.Combine(_dir, "lds", "stores", "trak"), "--remove-top", "3",
            "--queries", "1", "--random-models", "1", "--sampling-steps", "4", "--out", cf]);
        Assert.That(code, Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var result = JsonNode.Parse(File.ReadAllText(Path.Combine(cf, "counterfactual.json")))!;
        Assert.That(result["perQuery"]![0]!["removed"]!.AsArray(), Has.Count.EqualTo(3));
        Assert.That(result["meanPixelRmsTop"]!.GetValue<double>(), Is.GreaterThanOrEqualTo(0));
        Assert.That(File.Exists(Path.Combine(cf, "before-after.png")), Is.True);
        Assert.That(Directory.Exists(Path.Combine(cf, "models", "query-000-top")) && Directory.Exists(Path.Combine(cf, "models", "random-00")), Is.True);
    }

    [Test]
    public void Evaluate_UnknownKind_ExitsTwo()
    {
        Assert.That(CliApp.Run(["evaluate", "loo", "--out", Path.Combine(_dir, "x")]), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("'loo'"));
    }
}
