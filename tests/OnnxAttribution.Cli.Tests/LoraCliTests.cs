using System.Text.Json.Nodes;

namespace OnnxAttribution.Cli.Tests;

/// <summary>
/// A LoRA fine-tune through the CLI, as docs/guides/lora.md runs it: train a base → export → train --base on a fine-tuning
/// set → export → check-gradients → featurize the fine-tuning set → attribute; and a base that does not fit is exit 2 naming
/// the option. (Part of <see cref="CliTests"/>.)
/// </summary>
public sealed partial class CliTests
{
    [Test]
    public void Lora_FineTuneOfABase_ExportsTheAdaptersGradients_AndAttributesOverTheFineTuningSet()
    {
        string baseRun = Path.Combine(_dir, "base-run"), baseModel = Path.Combine(_dir, "base"), run = Path.Combine(_dir, "lora-run");
        string model = Path.Combine(_dir, "lora"), store = Path.Combine(_dir, "lora-store");
        Assert.That(RunAfresh("train", "--subset", "0:30", "--steps", "2", "--batch-size", "4", "--base-channels", "8", "--out", baseRun),
            Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(RunAfresh("export", "--checkpoint", baseRun, "--out", baseModel), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(RunAfresh("train", "--base", baseModel, "--lora-rank", "2", "--subset", "30:50", "--steps", "3", "--batch-size", "4",
            "--lr", "1e-2", "--out", run), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(RunAfresh("export", "--checkpoint", run, "--out", model), Is.EqualTo(CliApp.Ok), _stderr.ToString());

        var meta = JsonNode.Parse(File.ReadAllText(Path.Combine(model, "model.json")))!;
        Assert.That(meta["lora"]!["base"]!.GetValue<string>(), Is.EqualTo(baseModel));
        Assert.That(meta["lora"]!["rank"]!.GetValue<int>(), Is.EqualTo(2));
        Assert.That(meta["parameters"]!.AsArray().Select(p => p!["name"]!.GetValue<string>()), Has.All.Contains("_lora."));

        Assert.That(RunAfresh("check-gradients", "--model", model, "--fresh", "0", "--batch-sizes", "1,2", "--timesteps", "10,900"), Is.EqualTo(CliApp.Ok),
            _stderr.ToString() + _stdout.ToString());
        Assert.That(RunAfresh("featurize", "--model", model, "--subset", "30:50", "--timesteps", "2", "--dim", "64", "--out", store), Is.EqualTo(CliApp.Ok),
            _stderr.ToString());
        Assert.That(RunAfresh("finalize", "--store", store), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(RunAfresh("attribute", "--store", store, "--seed", "4", "--steps", "3", "--top", "5", "--json", "--out", Path.Combine(_dir, "l.png")),
            Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var top = JsonNode.Parse(_stdout.ToString())!["rankings"]![0]!["top"]!.AsArray();
        Assert.That(top, Has.Count.EqualTo(5));

        // Remove-and-retrain in the LoRA setting: each retrained model is a fine-tune of the same base without the removed rows.
        string counterfactual = Path.Combine(_dir, "lora-counterfactual");
        Assert.That(RunAfresh("counterfactual", "--store", store, "--queries", "2", "--random-models", "1", "--remove-top", "3", "--sampling-steps", "2",
            "--out", counterfactual, "--json"), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var retrained = JsonNode.Parse(File.ReadAllText(Path.Combine(counterfactual, "models", "random-00", "model.json")))!;
        Assert.That(retrained["lora"]!["baseSha256"]!.GetValue<string>(), Is.EqualTo(meta["lora"]!["baseSha256"]!.GetValue<string>()));
        Assert.That(retrained["training"]!["steps"]!.GetValue<int>(), Is.EqualTo(3));

        // A base that does not fit: exit 2 naming the option, nothing written. Another base of the same architecture cannot
        // resume the run either.
        string otherBase = Path.Combine(_dir, "other-base");
        Assert.That(RunAfresh("train", "--subset", "0:30", "--steps", "2", "--batch-size", "4", "--base-channels", "8", "--seed", "5", "--out", baseRun + "2"),
            Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(RunAfresh("export", "--checkpoint", baseRun + "2", "--out", otherBase), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var cases = new (string[] Args, string Message)[]
        {
            (["train", "--base", baseModel, "--lora-targets", "attention", "--steps", "1", "--out", Path.Combine(_dir, "x")], "no attention layers"),
            (["train", "--base", model, "--steps", "1", "--out", Path.Combine(_dir, "x")], "itself a LoRA fine-tune"),
            (["train", "--base", Path.Combine(_dir, "none"), "--steps", "1", "--out", Path.Combine(_dir, "x")], "--base"),
            (["train", "--base", baseModel, "--lora-rank", "0", "--steps", "1", "--out", Path.Combine(_dir, "x")], "--lora-rank"),
            (["train", "--base", otherBase, "--subset", "30:50", "--steps", "4", "--lora-rank", "2", "--lr", "1e-2", "--batch-size", "4", "--out", run],
                "fine-tunes another base"),
        };
        foreach (var (args, message) in cases)
        {
            Assert.That(RunAfresh(args), Is.EqualTo(CliApp.BadInput), string.Join(' ', args));
            Assert.That(_stderr.ToString(), Does.Contain(message), string.Join(' ', args));
        }
        Assert.That(Directory.Exists(Path.Combine(_dir, "x")), Is.False);
    }
}
