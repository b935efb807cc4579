using OnnxAttribution.TestSupport;

namespace OnnxAttribution.Cli.Tests;

/// <summary>
/// Files written by PyTorch's own exporter (the Torch category: tools/torch-models, Debian's python3-torch 1.13): each
/// architecture at each opset it exports at imports, and its derived gradient graph matches PyTorch autograd — the
/// forward output within 1e-5 and every parameter tensor's gradient of D-TRAK's output within 1e-4, relative.
/// </summary>
public sealed partial class CliTests
{
    public static IEnumerable<TestCaseData> TorchExportCases()
    {
        foreach (var model in new[] { "ddpm_unet", "diffusers_unet", "dit" })
        {
            // PyTorch 1.13 cannot export DiT's affine-free LayerNorm at opset 17 (its LayerNormalization needs a scale): 13 to 16 only.
            foreach (int opset in model == "dit" ? new[] { 13, 14, 15, 16 } : new[] { 13, 14, 15, 16, 17 })
            {
                yield return new TestCaseData(model, opset).SetName($"TorchExport_ImportsAndMatchesAutograd({model}, opset {opset})");
            }
        }
    }

    [TestCaseSource(nameof(TorchExportCases))]
    [Category("Torch")]
    public void TorchExport_ImportsAndMatchesAutograd(string model, int opset)
    {
        var exported = TorchExports.Export(RepositoryRoot(), model, opset);
        var folder = Path.Combine(_dir, "model");
        string[] import = ["import", "--onnx", Path.Combine(exported, "model.onnx"), "--out", folder];
        if (model == "dit")
        {
            import = [.. import, "--exclude-parameters", "pos_embed"]; // a frozen buffer that PyTorch exports like a weight
        }

        Assert.That(CliApp.Run(import), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        _stdout.GetStringBuilder().Clear();
        int code = CliApp.Run(["check-gradients", "--model", folder, "--reference", Path.Combine(exported, "oracle"), "--json"]);

        Assert.That(code, Is.EqualTo(CliApp.Ok), _stdout.ToString() + _stderr);
        var report = System.Text.Json.Nodes.JsonNode.Parse(_stdout.ToString())!["report"]!;
        var tensors = report["tensors"]!.AsArray();
        Assert.That((double)report["forwardMaxRelativeError"]!, Is.LessThanOrEqualTo(1e-5));
        Assert.That(tensors.Select(t => (double)t!["maxRelativeError"]!), Has.All.LessThanOrEqualTo(1e-4));
        Assert.That(report["missingGradients"]!.AsArray(), Is.Empty, "every PyTorch parameter has its gradient in the graph");
        Assert.That(report["unmatchedGradients"]!.AsArray(), Is.Empty, "no gradient for a tensor PyTorch holds frozen");
        // The one-element output bias of a one-channel model is a parameter like any other.
        if (model != "dit")
        {
            Assert.That(tensors.Select(t => (string)t!["initializer"]!), Does.Contain("conv_out.bias"));
        }
    }

    [Test]
    [Category("Torch")]
    public void TorchExport_DynamicHeightAndWidth_ImportsWithImageSizeAndMatchesAutograd()
    {
        var exported = TorchExports.Export(RepositoryRoot(), "diffusers_unet", 17, dynamicSize: true);
        var onnx = Path.Combine(exported, "model.onnx");

        Assert.That(CliApp.Run(["import", "--onnx", onnx, "--out", Path.Combine(_dir, "open")]), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("--image-size"), "the size the export left open is asked for by its option");
        var folder = Path.Combine(_dir, "model");
        Assert.That(CliApp.Run(["import", "--onnx", onnx, "--out", folder, "--image-size", "16"]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(CliApp.Run(["check-gradients", "--model", folder, "--reference", Path.Combine(exported, "oracle")]), Is.EqualTo(CliApp.Ok),
            _stdout.ToString() + _stderr);
    }

    [Test]
    [Category("Torch")]
    public void CheckGradientsReference_OneTensorOffByOnePercent_ExitsThreeNamingIt()
    {
        var exported = TorchExports.Export(RepositoryRoot(), "ddpm_unet", 17);
        var model = Path.Combine(_dir, "model");
        Assert.That(CliApp.Run(["import", "--onnx", Path.Combine(exported, "model.onnx"), "--out", model]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var oracle = Path.Combine(_dir, "oracle");
        Directory.CreateDirectory(oracle);
        foreach (var f in Directory.GetFiles(Path.Combine(exported, "oracle")))
        {
            File.Copy(f, Path.Combine(oracle, Path.GetFileName(f)));
        }
        var target = Path.Combine(oracle, "grad.down.0.conv1.weight.npy");
        var (header, values) = OnnxAttribution.Store.NpyFormat.ReadMatrix(target);
        OnnxAttribution.Store.NpyFormat.WriteMatrix(target, values.Select(v => v * 1.01f).ToArray(), header.Rows, header.Columns);
        _stdout.GetStringBuilder().Clear();

        int code = CliApp.Run(["check-gradients", "--model", model, "--reference", oracle]);

        Assert.That(code, Is.EqualTo(CliApp.CheckFailed), _stdout.ToString());
        Assert.That(_stdout.ToString(), Does.Contain("down.0.conv1.weight").And.Contain("FAILED"));
        File.Delete(Path.Combine(oracle, "oracle.json"));
        Assert.That(CliApp.Run(["check-gradients", "--model", model, "--reference", oracle]), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("no oracle.json"));
    }

    [Test]
    [Category("Torch")]
    public void TorchExport_DdpmUNet_GenerateFeaturizeAttribute()
    {
        var exported = TorchExports.Export(RepositoryRoot(), "ddpm_unet", 17);
        var model = Path.Combine(_dir, "model");
        var store = Path.Combine(_dir, "store");

        Assert.That(CliApp.Run(["import", "--onnx", Path.Combine(exported, "model.onnx"), "--out", model]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(CliApp.Run(["generate", "--model", model, "--count", "2", "--steps", "4", "--out", Path.Combine(_dir, "generated.png")]),
            Is.EqualTo(CliApp.Ok), _stderr.ToString());
        foreach (var projector in new[] { "dense", "factored" })
        {
            var s = store + "-" + projector;
            Assert.That(CliApp.Run(["featurize", "--model", model, "--subset", "0:16", "--method", "d-trak", "--timesteps", "2", "--projector", projector,
                "--dim", "64", "--out", s]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
            Assert.That(CliApp.Run(["finalize", "--store", s]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
            _stdout.GetStringBuilder().Clear();
            Assert.That(CliApp.Run(["attribute", "--store", s, "--seed", "3", "--steps", "4", "--top", "4", "--json", "--out", Path.Combine(_dir, projector + ".png")]),
                Is.EqualTo(CliApp.Ok), _stderr.ToString());
            var top = System.Text.Json.Nodes.JsonNode.Parse(_stdout.ToString())!["rankings"]![0]!["top"]!.AsArray();
            Assert.That(top, Has.Count.EqualTo(4));
            Assert.That(top.Select(r => (double)r!["score"]!), Has.All.Matches<double>(double.IsFinite));
        }
    }
}
