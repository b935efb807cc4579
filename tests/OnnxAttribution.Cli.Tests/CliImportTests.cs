using OnnxAttribution.Onnx;
using OnnxAttribution.TestSupport;

namespace OnnxAttribution.Cli.Tests;

/// <summary>A model not trained here, through the command line: import, generate, featurize, attribute.</summary>
public sealed partial class CliTests
{
    [TestCase("unet")]
    [TestCase("dit")]
    public void Import_ForeignModel_ThenGenerateFeaturizeAttribute(string kind)
    {
        var onnx = Path.Combine(_dir, kind + ".onnx");
        OnnxModelFile.Save(kind == "unet" ? ForeignModels.UNet(13) : ForeignModels.DiT(26), onnx);
        var model = Path.Combine(_dir, "model");
        var store = Path.Combine(_dir, "store");

        Assert.That(CliApp.Run(["import", "--onnx", onnx, "--out", model, "--schedule", "linear", "--timesteps", "1000"]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(_stdout.ToString(), Does.Contain("x_t ← 'sample'").And.Contain("t ← 'timestep' (int64").And.Contain("eps ← 'out'"));
        Assert.That(CliApp.Run(["generate", "--model", model, "--count", "2", "--steps", "4", "--out", Path.Combine(_dir, "generated.png")]),
            Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(CliApp.Run(["featurize", "--model", model, "--subset", "0:16", "--method", "d-trak", "--timesteps", "2", "--dim", "64", "--out", store]),
            Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(CliApp.Run(["finalize", "--store", store]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        _stdout.GetStringBuilder().Clear();
        Assert.That(CliApp.Run(["attribute", "--store", store, "--seed", "3", "--steps", "4", "--top", "4", "--json", "--out", Path.Combine(_dir, "grid.png")]),
            Is.EqualTo(CliApp.Ok), _stderr.ToString());

        var json = System.Text.Json.Nodes.JsonNode.Parse(_stdout.ToString())!;
        var top = json["rankings"]![0]!["top"]!.AsArray();
        Assert.That(top, Has.Count.EqualTo(4));
        Assert.That(top.Select(r => (double)r!["score"]!), Has.All.Matches<double>(double.IsFinite));
        Assert.That(File.Exists(Path.Combine(_dir, "grid.png")), Is.True);
    }

    [Test]
    public void Import_UnknownImageInput_ExitsTwoNamingTheFlagAndTheInputs()
    {
        var onnx = Path.Combine(_dir, "unet.onnx");
        OnnxModelFile.Save(ForeignModels.UNet(13), onnx);

        int code = CliApp.Run(["import", "--onnx", onnx, "--out", Path.Combine(_dir, "model"), "--image-input", "pixels"]);

        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain("--image-input pixels: the model has no such input; its inputs: sample, timestep"));
        Assert.That(Directory.Exists(Path.Combine(_dir, "model")), Is.False);
    }
}
