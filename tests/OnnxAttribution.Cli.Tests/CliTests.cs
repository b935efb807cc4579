using OnnxAttribution.Onnx;
using OnnxAttribution.TestSupport;

namespace OnnxAttribution.Cli.Tests;

/// <summary>The verbs as a user calls them: exit codes, messages that name the file, files written.</summary>
[TestFixture]
[NonParallelizable] // redirects the process's console
public sealed partial class CliTests
{
    private string _dir = "";
    private TextWriter _out = null!;
    private TextWriter _err = null!;
    private StringWriter _stdout = null!;
    private StringWriter _stderr = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("oa-cli-").FullName;
        (_out, _err) = (Console.Out, Console.Error);
        (_stdout, _stderr) = (new StringWriter(), new StringWriter());
        Console.SetOut(_stdout);
        Console.SetError(_stderr);
    }

    [TearDown]
    public void TearDown()
    {
        Console.SetOut(_out);
        Console.SetError(_err);
        Directory.Delete(_dir, recursive: true);
    }

    [Test]
    public void Generate_MissingModelFolder_ExitsTwoNamingIt()
    {
        var missing = Path.Combine(_dir, "no-such-model");
        int code = CliApp.Run(["generate", "--model", missing, "--out", Path.Combine(_dir, "x.png")]);
        Assert.That(code, Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain(missing));
    }

    [Test]
    public void Run_UnknownVerb_ExitsTwoWithHelp()
    {
        Assert.That(CliApp.Run(["featurise"]), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("featurise").And.Contain("not recognized"));
    }

    [Test]
    public void Differentiate_SmallModel_WritesGradientGraph()
    {
        var b = new GraphBuilder("net");
        b.Initializer("fc.weight", [1f, 2f, 3f, 4f, 5f, 6f], 2, 3);
        b.Input("x", TensorData.Float, -1, 3);
        var y = b.Node("Gemm", ["x", "fc.weight"], "y", Attr.Int("transB", 1));
        b.Output(y, TensorData.Float, -1, 2);
        var model = Path.Combine(_dir, "net.onnx");
        OnnxModelFile.Save(b.Build(), model);
        var vjp = Path.Combine(_dir, "net.vjp.onnx");

        int code = CliApp.Run(["differentiate", "--model", model, "--wrt-initializers", "--factors", "--out", vjp, "--json"]);

        Assert.That(code, Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var written = OnnxModelFile.Load(vjp);
        Assert.That(written.Graph.Output.Select(o => o.Name), Is.EqualTo(new[] { "y", "grad.fc.weight", "a.fc", "g.fc" }));
        Assert.That(_stdout.ToString(), Does.Contain("\"outputs\""));
    }

    [Test]
    public void Differentiate_TwoOutputs_OutputOptionChoosesOneAndRepeatedParameterExitsTwo()
    {
        var b = new GraphBuilder("net");
        b.Initializer("fc.weight", [1f, 2f, 3f, 4f, 5f, 6f], 2, 3);
        b.Input("x", TensorData.Float, -1, 3);
        var h = b.Node("Gemm", ["x", "fc.weight"], "h", Attr.Int("transB", 1));
        b.Node("Relu", [h], "y");
        b.Output("h", TensorData.Float, -1, 2);
        b.Output("y", TensorData.Float, -1, 2);
        var model = Path.Combine(_dir, "two.onnx");
        OnnxModelFile.Save(b.Build(), model);
        var vjp = Path.Combine(_dir, "two.vjp.onnx");

        Assert.That(CliApp.Run(["differentiate", "--model", model, "--wrt-initializers", "--out", vjp]), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("--output"));
        Assert.That(CliApp.Run(["differentiate", "--model", model, "--parameters", "fc.weight,fc.weight", "--output", "y", "--out", vjp]), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("'fc.weight' is listed 2 times"));
        Assert.That(CliApp.Run(["differentiate", "--model", model, "--parameters", "fc.weight", "--output", "y", "--out", vjp]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(OnnxModelFile.Load(vjp).Graph.Output.Select(o => o.Name), Is.EqualTo(new[] { "y", "grad.fc.weight" }));
    }

    [Test]
    public void Differentiate_NothingChosen_ExitsTwoSayingWhatToPass()
    {
        int code = CliApp.Run(["differentiate", "--model", "m.onnx", "--out", "v.onnx"]);
        Assert.That(code, Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("--wrt-initializers"));
    }

    [Test]
    public void Featurize_BadShard_ExitsTwoNamingTheOption()
    {
        int code = CliApp.Run(["featurize", "--model", FindShippedModel(), "--subset", "0:4", "--shard", "3/2", "--out", Path.Combine(_dir, "s")]);
        Assert.That(code, Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("--shard '3/2'"));
    }

    [Test]
    public void Attribute_JourneyStore_WritesTheJourneyPictureAndPerStepRankings()
    {
        var store = Path.Combine(_dir, "journey");
        Assert.That(CliApp.Run(["featurize", "--model", FindShippedModel(), "--method", "journey-trak", "--subset", "0:16",
            "--journey-steps", "2", "--dim", "64", "--out", store]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var png = Path.Combine(_dir, "a.png");
        Assert.That(CliApp.Run(["attribute", "--store", store, "--seed", "7", "--steps", "4", "--top", "3", "--json", "--out", png]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(File.Exists(Path.Combine(_dir, "a-journey.png")), Is.True);
        using var json = System.Text.Json.JsonDocument.Parse(_stdout.ToString()[_stdout.ToString().IndexOf('{', StringComparison.Ordinal)..]);
        var steps = json.RootElement.GetProperty("journeys")[0].GetProperty("steps");
        Assert.That(steps.EnumerateArray().Select(x => x.GetProperty("timestep").GetInt64()), Is.EqualTo(new long[] { 999, 499 }));
        Assert.That(steps.EnumerateArray().Select(x => x.GetProperty("top").GetArrayLength()), Is.All.EqualTo(3));
    }

    [Test]
    public void TrainEnsemble_TinyRun_AttributeAndGenerateFromMember()
    {
        var ensemble = Path.Combine(_dir, "e");
        int code = CliApp.Run(["train-ensemble", "--data", "embedded", "--subset", "0:6", "--members", "2", "--steps", "2", "--batch-size", "2",
            "--base-channels", "16", "--threads", "1", "--timesteps", "2", "--noise-draws", "1", "--out", ensemble, "--json"]);
        Assert.That(code, Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(_stdout.ToString(), Does.Contain("\"groups\": 6"));

        code = CliApp.Run(["attribute", "--store", ensemble, "--seed", "0", "--steps", "3", "--top", "3", "--out", Path.Combine(_dir, "a.png"), "--json"]);
        Assert.That(code, Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(_stdout.ToString(), Does.Contain("\"method\": \"ensemble\""));

        code = CliApp.Run(["generate", "--ensemble", ensemble, "--member", "1", "--steps", "3", "--out", Path.Combine(_dir, "g.png")]);
        Assert.That(code, Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(File.Exists(Path.Combine(_dir, "g.png")));

        code = CliApp.Run(["generate", "--ensemble", ensemble, "--member", "2", "--out", Path.Combine(_dir, "h.png")]);
        Assert.That(code, Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("--member 2").And.Contain("0..1"));
    }

    [Test]
    public void Featurize_MethodEnsemble_ExitsTwoPointingToTrainEnsemble()
    {
        int code = CliApp.Run(["featurize", "--model", FindShippedModel(), "--data", "embedded", "--subset", "0:4", "--method", "ensemble", "--out", Path.Combine(_dir, "s")]);
        Assert.That(code, Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("train-ensemble"));
    }

    private static string FindShippedModel() => Path.Combine(RepositoryRoot(), "models", "fm16");

    private static string RepositoryRoot() => RepositoryFiles.Root;
}
