using System.Text.Json.Nodes;
using OnnxAttribution.TestSupport;

namespace OnnxAttribution.Cli.Tests;

/// <summary>
/// A class-conditional model through the CLI, as docs/guides/conditional.md runs it: train --condition label → export →
/// check-gradients → generate --label → featurize → attribute --label; and every condition that does not fit is exit 2
/// naming the option, with nothing written. (Part of <see cref="CliTests"/>.)
/// </summary>
public sealed partial class CliTests
{
    /// <summary>A conditional model (2 training steps: what is checked is the wiring, not the quality) and a D-TRAK store of
    /// 30 rows, made once for these tests.</summary>
    private static readonly string ConditionalRoot = Path.Combine(Path.GetTempPath(), $"oa-cli-conditional-{Environment.ProcessId}");

    private static readonly Lazy<(string Model, string Store)> Conditional = new(() => TrainConditional("label", ConditionalRoot));

    /// <summary>Trains (2 steps), exports, featurizes and finalizes a model conditioned on <paramref name="condition"/> in <paramref name="root"/>.</summary>
    private static (string Model, string Store) TrainConditional(string condition, string root)
    {
        root = Directory.CreateDirectory(root).FullName;
        string run = Path.Combine(root, "run"), model = Path.Combine(root, "model"), store = Path.Combine(root, "store");
        Require(CliApp.Run(["train", "--condition", condition, "--data", "embedded", "--subset", "0:30", "--steps", "2", "--batch-size", "4",
            "--base-channels", "8", "--out", run]), "train");
        Require(CliApp.Run(["export", "--checkpoint", run, "--out", model]), "export");
        Require(CliApp.Run(["featurize", "--model", model, "--subset", "0:30", "--timesteps", "2", "--dim", "64", "--out", store]), "featurize");
        Require(CliApp.Run(["finalize", "--store", store]), "finalize");
        return (model, store);
    }

    [OneTimeTearDown]
    public void DeleteConditionalModels()
    {
        foreach (var root in new[] { ConditionalRoot, TextRoot }.Where(Directory.Exists))
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static void Require(int code, string verb)
    {
        if (code != CliApp.Ok)
        {
            throw new InvalidOperationException($"setting up the conditional model: '{verb}' exited {code}");
        }
    }

    [Test]
    public void Conditional_TrainExportCheckGenerateAttribute_WorksUnderALabel()
    {
        var (model, store) = Conditional.Value;
        var meta = JsonNode.Parse(File.ReadAllText(Path.Combine(model, "model.json")))!;
        Assert.That(meta["condition"]!["classes"]!.GetValue<int>(), Is.EqualTo(10));
        Assert.That(RunAfresh("check-gradients", "--model", model, "--fresh", "0", "--batch-sizes", "1,2", "--timesteps", "10,900"), Is.EqualTo(CliApp.Ok),
            _stderr.ToString() + _stdout.ToString());
        Assert.That(RunAfresh("generate", "--model", model, "--label", "7", "--guidance", "2", "--steps", "3", "--out", Path.Combine(_dir, "g.png")),
            Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(File.Exists(Path.Combine(_dir, "g.png")), Is.True);

        JsonNode Answer(string label)
        {
            Assert.That(RunAfresh("attribute", "--store", store, "--seed", "4", "--steps", "3", "--label", label, "--top", "5", "--json",
                "--out", Path.Combine(_dir, $"a{label}.png")), Is.EqualTo(CliApp.Ok), _stderr.ToString());
            return JsonNode.Parse(_stdout.ToString())!["rankings"]![0]!;
        }
        var sneaker = Answer("7");
        var trouser = Answer("1");
        Assert.That(sneaker["condition"]!.GetValue<long>(), Is.EqualTo(7));
        Assert.That(trouser["condition"]!.GetValue<long>(), Is.EqualTo(1));
        Assert.That(sneaker["top"]!.ToJsonString(), Is.Not.EqualTo(trouser["top"]!.ToJsonString()));
        Assert.That(RunAfresh("report", "--store", store, "--seed", "4", "--steps", "3", "--label", "7", "--out", Path.Combine(_dir, "r.html")),
            Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(File.ReadAllText(Path.Combine(_dir, "r.html")), Does.Contain("under class label <code>7</code>"));
    }

    [Test]
    public void Conditional_RemoveAndRetrain_RetrainsConditionalModelsAndRegeneratesUnderTheQueryLabels()
    {
        var (_, store) = Conditional.Value;
        string counterfactual = Path.Combine(_dir, "conditional-counterfactual");
        Assert.That(RunAfresh("counterfactual", "--store", store, "--queries", "2", "--random-models", "1", "--remove-top", "3", "--sampling-steps", "2",
            "--out", counterfactual), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var retrained = JsonNode.Parse(File.ReadAllText(Path.Combine(counterfactual, "models", "random-00", "model.json")))!;
        Assert.That(retrained["condition"]!["classes"]!.GetValue<int>(), Is.EqualTo(10));
    }

    [Test]
    public void Conditional_LabelMissingOutOfRangeOrForAnUnconditionalModel_ExitsTwoNamingIt()
    {
        var (model, store) = Conditional.Value;
        string png = Path.Combine(_dir, "q.png");
        Assert.That(RunAfresh("generate", "--model", model, "--label", "2", "--steps", "2", "--out", png), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var cases = new (string[] Args, string Message)[]
        {
            (["attribute", "--store", store, "--image", png, "--out", Path.Combine(_dir, "x.png")], "--label is required"),
            (["attribute", "--store", store, "--image", png, "--label", "10", "--out", Path.Combine(_dir, "x.png")], "--label is 10"),
            (["attribute", "--store", store, "--seed", "1", "--out", Path.Combine(_dir, "x.png")], "--label"),
            (["generate", "--model", model, "--steps", "2", "--out", Path.Combine(_dir, "x.png")], "--label"),
            (["generate", "--model", FindShippedModel(), "--label", "3", "--steps", "2", "--out", Path.Combine(_dir, "x.png")], "unconditional"),
            (["featurize", "--model", model, "--method", "ensemble", "--subset", "0:4", "--out", Path.Combine(_dir, "k")], "train-ensemble"),
            (["train", "--condition", "caption", "--steps", "1", "--out", Path.Combine(_dir, "r")], "--condition is 'caption'"),
        };
        foreach (var (args, message) in cases)
        {
            Assert.That(RunAfresh(args), Is.EqualTo(CliApp.BadInput), string.Join(' ', args));
            Assert.That(_stderr.ToString(), Does.Contain(message), string.Join(' ', args));
        }
        Assert.That(File.Exists(Path.Combine(_dir, "x.png")), Is.False);
        Assert.That(Directory.Exists(Path.Combine(_dir, "k")), Is.False);
    }

    /// <summary>
    /// A class-conditional DiT written by PyTorch's own exporter, its label an int64 input: import names it, the derived
    /// gradient graph matches PyTorch autograd under the oracle's label, and the model attributes under a label end to end.
    /// </summary>
    [Test]
    [Category("Torch")]
    public void TorchExport_ClassConditionalDiT_ImportsMatchesAutogradAndAttributesUnderALabel()
    {
        var exported = TorchExports.Export(RepositoryRoot(), "dit_label", 16);
        var folder = Path.Combine(_dir, "dit-label");
        Assert.That(RunAfresh("import", "--onnx", Path.Combine(exported, "model.onnx"), "--out", folder, "--exclude-parameters", "pos_embed",
            "--condition-input", "y", "--classes", "10", "--null-label", "10"), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var condition = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "model.json")))!["condition"]!;
        Assert.That((condition["input"]!.GetValue<string>(), condition["classes"]!.GetValue<int>()), Is.EqualTo(("y", 10)));

        Assert.That(RunAfresh("check-gradients", "--model", folder, "--reference", Path.Combine(exported, "oracle"), "--json"), Is.EqualTo(CliApp.Ok),
            _stdout.ToString() + _stderr);
        var report = JsonNode.Parse(_stdout.ToString())!["report"]!;
        Assert.That((double)report["forwardMaxRelativeError"]!, Is.LessThanOrEqualTo(1e-5));
        Assert.That(report["tensors"]!.AsArray().Select(t => (double)t!["maxRelativeError"]!), Has.All.LessThanOrEqualTo(1e-4));
        Assert.That(report["tensors"]!.AsArray().Select(t => (string)t!["initializer"]!), Does.Contain("y_embedding_table.weight"));

        string store = Path.Combine(_dir, "dit-store");
        Assert.That(RunAfresh("featurize", "--model", folder, "--subset", "0:12", "--timesteps", "2", "--dim", "32", "--out", store), Is.EqualTo(CliApp.Ok),
            _stderr.ToString());
        Assert.That(RunAfresh("finalize", "--store", store), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(RunAfresh("attribute", "--store", store, "--seed", "2", "--steps", "2", "--label", "4", "--top", "3", "--json",
            "--out", Path.Combine(_dir, "dit.png")), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(JsonNode.Parse(_stdout.ToString())!["rankings"]![0]!["condition"]!.GetValue<long>(), Is.EqualTo(4));

        // A label input that is not there, or a class count without one: exit 2 naming the option, nothing written.
        Assert.That(RunAfresh("import", "--onnx", Path.Combine(exported, "model.onnx"), "--out", Path.Combine(_dir, "x"), "--condition-input", "class_labels",
            "--classes", "10"), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("class_labels"));
        Assert.That(RunAfresh("import", "--onnx", Path.Combine(exported, "model.onnx"), "--out", Path.Combine(_dir, "x"), "--classes", "10"),
            Is.EqualTo(CliApp.BadInput));
        Assert.That(Directory.Exists(Path.Combine(_dir, "x")), Is.False);
    }
}
