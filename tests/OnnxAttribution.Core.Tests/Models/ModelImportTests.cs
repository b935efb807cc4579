using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Onnx.Proto;
using OnnxAttribution.Onnx;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Core.Tests.Models;

/// <summary>
/// Models not trained here, written as PyTorch exports them (<see cref="ForeignModels"/>): import wires them to the
/// engine, and generate → featurize → attribute run on them unchanged.
/// </summary>
public sealed class ModelImportTests : TempDirectoryTest
{
    private static readonly ScheduleSettings Linear = new(ScheduleKind.Linear, 1000);

    private string Save(ModelProto model, string name)
    {
        var path = Path.Combine(TempDir, name + ".onnx");
        OnnxModelFile.Save(model, path);
        return path;
    }

    private ModelMetadata Import(string onnx, string folder, Func<ModelImportOptions, ModelImportOptions>? change = null)
    {
        var options = new ModelImportOptions { ModelPath = onnx, OutDirectory = Path.Combine(TempDir, folder), Schedule = Linear };
        return ModelImport.Import(change is null ? options : change(options));
    }

    [Test]
    public void Import_TimestepProbe_FeedsScaleTimesStepPlusOffset()
    {
        var onnx = Save(ForeignModels.TimestepProbe(), "probe");

        var meta = Import(onnx, "probe", o => o with { TimestepScale = 0.001, TimestepOffset = 1 });

        Assert.That(meta.Import, Is.Not.Null);
        Assert.That((meta.Import!.ImageInput, meta.Import.TimestepInput, meta.Import.TimestepType, meta.Import.Output),
            Is.EqualTo(("sample", "timestep", "float", "out")));
        Assert.That((meta.ImageSize, meta.Channels), Is.EqualTo((4, 1)));
        using var denoiser = ModelDirectory.Open(Path.Combine(TempDir, "probe")).OpenDenoiser();
        var x = Enumerable.Repeat(1f, 2 * 16).ToArray();
        var eps = new float[x.Length];
        denoiser.Predict(x, [0, 999], 2, eps);
        // out = sample · timestep with timestep = 0.001 · (t + 1): 0.001 for t = 0, 1 for t = 999.
        Assert.That(eps[0], Is.EqualTo(0.001f).Within(1e-7f));
        Assert.That(eps[16], Is.EqualTo(1f).Within(1e-6f));
        Assert.That(ModelMetadata.Load(Path.Combine(TempDir, "probe")).Import, Is.EqualTo(meta.Import), "model.json records the wiring");
    }

    [Test]
    public void Import_ParameterPatterns_ChooseAndExcludeAndAreRecorded()
    {
        var onnx = Save(ForeignModels.UNet(13), "unet");
        var all = Import(onnx, "default").Parameters.Select(p => p.Name).ToList();

        var meta = Import(onnx, "chosen", o => o with { Parameters = ["*.weight", "time_table"], ExcludeParameters = ["attn.*"] });

        var expected = all.Where(n => (n.EndsWith(".weight", StringComparison.Ordinal) || n == "time_table") && !n.StartsWith("attn.", StringComparison.Ordinal)).ToList();
        Assert.That(expected, Is.Not.Empty);
        Assert.That(meta.Parameters.Select(p => p.Name), Is.EqualTo(expected));
        var loaded = ModelMetadata.Load(Path.Combine(TempDir, "chosen")).Import!;
        Assert.That(loaded.ParameterPatterns, Is.EqualTo(new[] { "*.weight", "time_table" }));
        Assert.That(loaded.ExcludedParameterPatterns, Is.EqualTo(new[] { "attn.*" }));
        Assert.That(ModelMetadata.Load(Path.Combine(TempDir, "default")).Import!.ParameterPatterns, Is.Null, "the default choice records no pattern");
    }

    [TestCase("Parameters", "nothing.*")]
    [TestCase("ExcludeParameters", "nothing.*")]
    public void Import_ParameterPatternMatchingNothing_NamesTheSettingAndWritesNothing(string setting, string pattern)
    {
        var onnx = Save(ForeignModels.UNet(13), "unet");

        var e = Assert.Throws<SettingException>(() => Import(onnx, "model",
            o => setting == "Parameters" ? o with { Parameters = [pattern] } : o with { ExcludeParameters = [pattern] }));

        Assert.That(e!.Setting, Is.EqualTo(setting));
        Assert.That(e.Message, Does.Contain(pattern));
        Assert.That(Directory.Exists(Path.Combine(TempDir, "model")), Is.False);
    }

    [TestCase(13)]
    [TestCase(21)]
    [TestCase(26)]
    public void Import_UNetWithAttention_RecordsParametersAndRuns(int opset)
    {
        var onnx = Save(ForeignModels.UNet(opset), $"unet{opset}");

        var meta = Import(onnx, $"unet{opset}");

        Assert.That(meta.Parameters.Select(p => p.Name), Does.Contain("attn.qkv.weight").And.Contain("time_table"),
            "the weight behind Transpose and the embedding table behind Gather are parameters");
        Assert.That((meta.Import!.Opset, meta.Import.TimestepInput, meta.Import.TimestepType), Is.EqualTo((opset, "timestep", "int64")));
        Assert.That(File.Exists(Path.Combine(TempDir, $"unet{opset}", "vjp.onnx")), Is.True);
    }

    [Test]
    public void ImportedUNet_GenerateFeaturizeAttribute_RunsEndToEnd()
    {
        var model = Path.Combine(TempDir, "unet");
        Import(Save(ForeignModels.UNet(17, TensorData.Float, fixedBatch: true), "unet"), "unet");
        AssertEndToEnd(model);
    }

    [Test]
    public void ImportedDiT_GenerateFeaturizeAttribute_RunsEndToEnd()
    {
        var model = Path.Combine(TempDir, "dit");
        var meta = Import(Save(ForeignModels.DiT(26), "dit"), "dit");
        Assert.That(meta.Parameters.Select(p => p.Name), Does.Contain("norm1.weight").And.Contain("mlp.fc1.weight"));
        AssertEndToEnd(model);
    }

    /// <summary>A small D-TRAK store on 24 embedded images, then two generated images attributed to it.</summary>
    private void AssertEndToEnd(string model)
    {
        var store = Path.Combine(TempDir, Path.GetFileName(model) + "-store");
        Attributor.BuildStore(new StoreBuildOptions
        {
            Method = "d-trak", ModelDirectory = model, Data = "embedded", Subset = "0:24", StoreDirectory = store,
            Settings = new MethodSettings { Timesteps = 2, Dim = 64 },
        });
        using var attributor = Attributor.Open(model, store);
        var rankings = attributor.AttributeSeeds([1, 2], top: 5, steps: 4);

        Assert.That(rankings, Has.Count.EqualTo(2));
        foreach (var ranking in rankings)
        {
            Assert.That(ranking.Top, Has.Count.EqualTo(5));
            Assert.That(ranking.Top.Select(r => r.Index), Is.Unique.And.All.InRange(0, 23));
            Assert.That(ranking.Top.Select(r => r.Score), Has.All.Matches<float>(float.IsFinite));
            Assert.That(ranking.Top.Select(r => r.Score), Is.Ordered.Descending);
        }
        Assert.That(rankings[0].Top.Select(r => r.Score), Is.Not.EqualTo(rankings[1].Top.Select(r => r.Score)), "the two queries differ");
        // A training image attributed to the store ranks rows by its features: itself among the first.
        var self = attributor.Attribute([new AttributionQuery("row 3", attributor.TrainingData.Image(3).ToArray())], top: 3)[0];
        Assert.That(self.Top.Select(r => r.Index), Does.Contain(3L));
    }

    [Test]
    public void Import_TwoOutputsUnnamed_NamesTheOutputs()
    {
        var model = ForeignModels.TimestepProbe();
        model.Graph.Output.Add(GraphBuilder.ValueInfo("sample", TensorData.Float, [-1, 1, 4, 4]));
        var onnx = Save(model, "two");

        var e = Assert.Throws<SettingException>(() => Import(onnx, "two"))!;

        Assert.That(e.Setting, Is.EqualTo("Output"));
        Assert.That(e.Message, Does.Contain("2 outputs (out, sample)"));
        Assert.That(Directory.Exists(Path.Combine(TempDir, "two")), Is.False);
    }

    [Test]
    public void Import_ScalarTimestep_IsRefusedNamingTheInput()
    {
        var model = ForeignModels.TimestepProbe();
        model.Graph.Input.Single(i => i.Name == "timestep").Type.TensorType.Shape.Dim.Clear();
        var onnx = Save(model, "scalar");

        var e = Assert.Throws<SettingException>(() => Import(onnx, "scalar"))!;

        Assert.That(e.Setting, Is.EqualTo("TimestepInput"));
        Assert.That(e.Message, Does.Contain("rank 0").And.Contain("[batch]"));
    }

    [Test]
    public void Import_IntegerTimestepWithAScale_IsRefused()
    {
        var onnx = Save(ForeignModels.UNet(17), "int");

        Assert.That(() => Import(onnx, "int", o => o with { TimestepScale = 0.001 }),
            Throws.TypeOf<SettingException>().With.Property(nameof(SettingException.Setting)).EqualTo("TimestepScale")
                .And.Message.Contains("int64"));
    }

    [Test]
    public void Import_FixedBatchBakedIntoAReshape_SaysToExportADynamicBatch()
    {
        var model = ForeignModels.TimestepProbe();
        // What an export without dynamic axes does: the batch 1 written into a Reshape's shape.
        foreach (var v in model.Graph.Input.Concat(model.Graph.Output))
        {
            v.Type.TensorType.Shape.Dim[0] = new TensorShapeProto.Types.Dimension { DimValue = 1 };
        }
        var shape = model.Graph.Initializer.Single(i => i.DataType == TensorData.Int64);
        shape.RawData = Google.Protobuf.ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes<long>([1, 1, 1, 1]));
        var onnx = Save(model, "fixed");

        var e = Assert.Throws<ModelFileException>(() => Import(onnx, "fixed"))!;

        Assert.That(e.Message, Does.Contain("batch of 2").And.Contain("fixed at 1").And.Contain("dynamic batch axis"));
        Assert.That(Directory.GetFileSystemEntries(TempDir).Select(Path.GetFileName), Is.EqualTo(new[] { "fixed.onnx" }), "nothing half-written is left");
    }

    [Test]
    public void Import_IntoAFolderWithAModel_IsRefused()
    {
        var onnx = Save(ForeignModels.TimestepProbe(), "probe");
        Import(onnx, "probe");

        Assert.That(() => Import(onnx, "probe"), Throws.TypeOf<UserInputException>().With.Message.Contains("already holds a model"));
    }
}
