using System.Text.Json.Nodes;
using OnnxAttribution.TestSupport;

namespace OnnxAttribution.Cli.Tests;

/// <summary>
/// A text-conditioned model through the CLI, as docs/guides/conditional.md runs it: train --condition text → export (with
/// text-encoder.onnx) → check-gradients → generate --prompt → featurize (each row under its caption) → attribute --prompt →
/// remove-and-retrain; and every prompt that does not fit is exit 2 naming the option, with nothing written.
/// (Part of <see cref="CliTests"/>.)
/// </summary>
public sealed partial class CliTests
{
    private static readonly string TextRoot = Path.Combine(Path.GetTempPath(), $"oa-cli-text-{Environment.ProcessId}");

    private static readonly Lazy<(string Model, string Store)> Text = new(() => TrainConditional("text", TextRoot));

    [Test]
    public void Text_TrainExportCheckGenerateAttribute_WorksUnderAPrompt()
    {
        var (model, store) = Text.Value;
        var condition = JsonNode.Parse(File.ReadAllText(Path.Combine(model, "model.json")))!["condition"]!;
        Assert.That(condition["kind"]!.GetValue<string>(), Is.EqualTo("text"));
        Assert.That(condition["vocabulary"]!.AsArray().Select(w => w!.GetValue<string>()), Does.Contain("sneaker"));
        Assert.That(File.Exists(Path.Combine(model, "text-encoder.onnx")), Is.True);
        Assert.That(RunAfresh("check-gradients", "--model", model, "--fresh", "1", "--batch-sizes", "1,2", "--timesteps", "10,900"), Is.EqualTo(CliApp.Ok),
            _stderr.ToString() + _stdout.ToString());
        Assert.That(RunAfresh("generate", "--model", model, "--prompt", "a dark sneaker", "--guidance", "2", "--steps", "3", "--out", Path.Combine(_dir, "g.png")),
            Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(File.Exists(Path.Combine(_dir, "g.png")), Is.True);

        JsonNode Answer(string prompt, string name)
        {
            Assert.That(RunAfresh("attribute", "--store", store, "--seed", "4", "--steps", "3", "--prompt", prompt, "--top", "5", "--json",
                "--out", Path.Combine(_dir, $"{name}.png")), Is.EqualTo(CliApp.Ok), _stderr.ToString());
            return JsonNode.Parse(_stdout.ToString())!["rankings"]![0]!;
        }
        var sneaker = Answer("a dark sneaker", "sneaker");
        var trouser = Answer("A light TROUSER", "trouser");
        Assert.That(sneaker["prompt"]!.GetValue<string>(), Is.EqualTo("a dark sneaker"));
        Assert.That(trouser["prompt"]!.GetValue<string>(), Is.EqualTo("a light trouser"));
        Assert.That(sneaker["top"]!.ToJsonString(), Is.Not.EqualTo(trouser["top"]!.ToJsonString()));
        Assert.That(sneaker["top"]![0]!["caption"]!.GetValue<string>(), Does.Match("^a (dark|light) "), "each credited row's caption");
        Assert.That(RunAfresh("report", "--store", store, "--seed", "4", "--steps", "3", "--prompt", "a dark sneaker", "--out", Path.Combine(_dir, "r.html")),
            Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(File.ReadAllText(Path.Combine(_dir, "r.html")), Does.Contain("under the prompt <code>a dark sneaker</code>"));
    }

    [Test]
    public void Text_RemoveAndRetrain_RetrainsTextModelsAndRegeneratesUnderTheQueryCaptions()
    {
        var (_, store) = Text.Value;
        string counterfactual = Path.Combine(_dir, "text-counterfactual");
        Assert.That(RunAfresh("counterfactual", "--store", store, "--queries", "2", "--random-models", "1", "--remove-top", "3", "--sampling-steps", "2",
            "--out", counterfactual), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var retrained = JsonNode.Parse(File.ReadAllText(Path.Combine(counterfactual, "models", "random-00", "model.json")))!;
        Assert.That(retrained["condition"]!["kind"]!.GetValue<string>(), Is.EqualTo("text"));
        Assert.That(File.Exists(Path.Combine(counterfactual, "models", "random-00", "text-encoder.onnx")), Is.True);
    }

    [Test]
    public void Text_PromptMissingUnknownEmptyOrForAnotherKindOfModel_ExitsTwoNamingIt()
    {
        var (model, store) = Text.Value;
        string png = Path.Combine(_dir, "q.png");
        Assert.That(RunAfresh("generate", "--model", model, "--prompt", "a bag", "--steps", "2", "--out", png), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        string x = Path.Combine(_dir, "x.png");
        var cases = new (string[] Args, string Message)[]
        {
            (["attribute", "--store", store, "--image", png, "--out", x], "--prompt is required"),
            (["attribute", "--store", store, "--image", png, "--prompt", "a red bag", "--out", x], "the word 'red' is not in the model's vocabulary"),
            (["attribute", "--store", store, "--image", png, "--prompt", " ", "--out", x], "--prompt is empty"),
            (["attribute", "--store", store, "--image", png, "--label", "3", "--out", x], "--label: the model is conditioned on a prompt"),
            (["attribute", "--store", store, "--seed", "1", "--prompt", "a dark t shirt top bag", "--out", x], "--prompt has 6 words"),
            (["generate", "--model", model, "--steps", "2", "--out", x], "--prompt is required"),
            (["generate", "--model", model, "--label", "2", "--steps", "2", "--out", x], "--label: the model is conditioned on a prompt"),
            (["generate", "--model", FindShippedModel(), "--prompt", "a bag", "--steps", "2", "--out", x], "--prompt: the model is unconditional"),
            (["generate", "--model", Conditional.Value.Model, "--prompt", "a bag", "--steps", "2", "--out", x], "conditioned on a class label"),
        };
        foreach (var (args, message) in cases)
        {
            Assert.That(RunAfresh(args), Is.EqualTo(CliApp.BadInput), string.Join(' ', args));
            Assert.That(_stderr.ToString(), Does.Contain(message), string.Join(' ', args));
        }
        Assert.That(File.Exists(x), Is.False);
    }

    /// <summary>
    /// A UNet2DConditionModel-style U-Net (cross-attention to encoder_hidden_states) and its caption encoder, both written by
    /// PyTorch's own exporter: import composes them, the derived gradient graph matches PyTorch autograd under the oracle's
    /// prompt, and the model attributes under a prompt end to end; a wrong embedding input or a missing vocabulary is exit 2.
    /// </summary>
    [Test]
    [Category("Torch")]
    public void TorchExport_TextConditionedUNet_ImportsMatchesAutogradAndAttributesUnderAPrompt()
    {
        var exported = TorchExports.Export(RepositoryRoot(), "diffusers_text", 17);
        var folder = Path.Combine(_dir, "text-import");
        string[] text = ["--text-encoder", Path.Combine(exported, "text-encoder.onnx"), "--vocabulary", Path.Combine(exported, "vocabulary.txt")];
        Assert.That(RunAfresh(["import", "--onnx", Path.Combine(exported, "model.onnx"), "--out", folder, "--condition-input", "encoder_hidden_states",
            .. text, "--class-names", Path.Combine(exported, "class-names.txt")]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var condition = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "model.json")))!["condition"]!;
        Assert.That((condition["kind"]!.GetValue<string>(), condition["embeddingInput"]!.GetValue<string>(), condition["length"]!.GetValue<int>()),
            Is.EqualTo(("text", "encoder_hidden_states", 5)));
        Assert.That(File.Exists(Path.Combine(folder, "text-encoder.onnx")), Is.True);

        Assert.That(RunAfresh("check-gradients", "--model", folder, "--reference", Path.Combine(exported, "oracle"), "--json"), Is.EqualTo(CliApp.Ok),
            _stdout.ToString() + _stderr);
        var report = JsonNode.Parse(_stdout.ToString())!["report"]!;
        Assert.That((double)report["forwardMaxRelativeError"]!, Is.LessThanOrEqualTo(1e-5));
        var tensors = report["tensors"]!.AsArray();
        Assert.That(tensors.Select(t => (double)t!["maxRelativeError"]!), Has.All.LessThanOrEqualTo(1e-4));
        Assert.That(tensors.Select(t => (string)t!["parameter"]!), Has.Some.StartsWith("mid_cross_attention.to_k"), "the keys read the caption");

        string store = Path.Combine(_dir, "text-import-store");
        Assert.That(RunAfresh("featurize", "--model", folder, "--subset", "0:12", "--timesteps", "2", "--dim", "32", "--out", store), Is.EqualTo(CliApp.Ok),
            _stderr.ToString());
        Assert.That(RunAfresh("finalize", "--store", store), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(RunAfresh("attribute", "--store", store, "--seed", "2", "--steps", "2", "--prompt", "a dark bag", "--top", "3", "--json",
            "--out", Path.Combine(_dir, "text-import.png")), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(JsonNode.Parse(_stdout.ToString())!["rankings"]![0]!["prompt"]!.GetValue<string>(), Is.EqualTo("a dark bag"));

        var cases = new (string[] Args, string Message)[]
        {
            (["--condition-input", "x", .. text], "--condition-input x"),
            (["--condition-input", "encoder_hidden_states", "--text-encoder", Path.Combine(exported, "text-encoder.onnx")], "--vocabulary"),
            ([.. text], "--condition-input"),
        };
        foreach (var (args, message) in cases)
        {
            Assert.That(RunAfresh(["import", "--onnx", Path.Combine(exported, "model.onnx"), "--out", Path.Combine(_dir, "x"), .. args]), Is.EqualTo(CliApp.BadInput),
                string.Join(' ', args));
            Assert.That(_stderr.ToString(), Does.Contain(message), string.Join(' ', args));
        }
        Assert.That(Directory.Exists(Path.Combine(_dir, "x")), Is.False);
    }
}
