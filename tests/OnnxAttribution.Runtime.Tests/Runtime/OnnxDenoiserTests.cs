using OnnxAttribution.Onnx;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime.Sampling;

namespace OnnxAttribution.Runtime.Tests.Runtime;

public sealed class OnnxDenoiserTests : TempDirectoryTest
{
    [Test]
    public void Predict_TinyModel_ComputesGraph()
    {
        var path = TinyModels.WriteForward(Path.Combine(TempDir, "forward.onnx"), 2, 3);
        using var denoiser = new OnnxDenoiser(path, 2, 3, new SessionSettings(IntraOpThreads: 1));
        const int b = 3, d = 2 * 3 * 3;
        var x = Enumerable.Range(0, b * d).Select(i => i * 0.1f).ToArray();
        long[] t = [0, 10, 999];
        var eps = new float[b * d];
        denoiser.Predict(x, t, b, eps);
        var expected = x.Select((v, i) => 0.5f * v + 0.01f * t[i / d]).ToArray();
        Assert.That(eps, Is.EqualTo(expected).Within(1e-5));
    }

    [Test]
    public void Predict_WrongLengths_Throws()
    {
        var path = TinyModels.WriteForward(Path.Combine(TempDir, "forward.onnx"), 1, 2);
        using var denoiser = new OnnxDenoiser(path, 1, 2);
        Assert.That(() => denoiser.Predict(new float[4], new long[2], 2, new float[8]), Throws.ArgumentException);
    }

    [Test]
    public void Open_InputNamedDifferently_NamesMissingInput()
    {
        var path = TinyModels.WriteForward(Path.Combine(TempDir, "forward.onnx"), 1, 2, xtName: "x");
        Assert.That(() => new OnnxDenoiser(path, 1, 2),
            Throws.TypeOf<GraphContractException>().With.Message.Contains("missing input 'x_t'").And.Message.Contains("unexpected input 'x'"));
    }

    [Test]
    public void Open_TimestepAsFloat_NamesElementType()
    {
        var path = TinyModels.WriteForward(Path.Combine(TempDir, "forward.onnx"), 1, 2, tType: TensorData.Float);
        Assert.That(() => new OnnxDenoiser(path, 1, 2),
            Throws.TypeOf<GraphContractException>().With.Message.Contains("input 't' is Float, expected Int64"));
    }

    [Test]
    public void Open_OtherImageSize_NamesDimension()
    {
        var path = TinyModels.WriteForward(Path.Combine(TempDir, "forward.onnx"), 1, 4);
        Assert.That(() => new OnnxDenoiser(path, 1, 8),
            Throws.TypeOf<GraphContractException>().With.Message.Contains("input 'x_t' has shape [?,1,4,4], expected dimension 2 = 8"));
    }

    [Test]
    public void Open_OutputNamedDifferently_NamesOutput()
    {
        var path = TinyModels.WriteForward(Path.Combine(TempDir, "forward.onnx"), 1, 2, epsName: "noise");
        Assert.That(() => new OnnxDenoiser(path, 1, 2),
            Throws.TypeOf<GraphContractException>().With.Message.Contains("missing output 'eps'").And.Message.Contains(path));
    }

    [Test]
    public void Open_NotAnOnnxFile_ModelFileExceptionNamesPath()
    {
        var path = Path.Combine(TempDir, "forward.onnx");
        File.WriteAllText(path, "not a model");
        Assert.That(() => new OnnxDenoiser(path, 1, 2), Throws.TypeOf<ModelFileException>().With.Message.Contains(path));
    }

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(16)]
    [TestCase(-1)] // all but the last byte
    public void Open_TruncatedOnnxFile_ModelFileExceptionNamesPathAndWritesNothing(int keep)
    {
        var path = TinyModels.WriteForward(Path.Combine(TempDir, "forward.onnx"), 1, 2);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(keep >= 0 ? keep : bytes.Length - 1)]);
        var before = Directory.GetFiles(TempDir).Select(f => (f, File.ReadAllBytes(f))).ToList();

        Assert.That(() => new OnnxDenoiser(path, 1, 2), Throws.TypeOf<ModelFileException>().With.Message.Contains(path));
        Assert.That(() => Onnx.OnnxModelFile.Load(path), Throws.InstanceOf<Onnx.OnnxGraphException>().With.Message.Contains(path));
        Assert.That(Directory.GetFiles(TempDir).Select(f => (f, File.ReadAllBytes(f))).ToList(), Is.EqualTo(before));
    }

    [Test]
    public void Open_Missing_ModelFileException()
    {
        Assert.That(() => new OnnxDenoiser(Path.Combine(TempDir, "none.onnx"), 1, 2), Throws.TypeOf<ModelFileException>());
    }

    [Test]
    public void CreateOptions_CudaOnCpuPackage_SaysGpuPackageNeeded()
    {
        if (OrtSessions.CudaBuild)
        {
            Assert.Ignore("this is the CUDA flavour's build: the CPU package's refusal does not apply");
        }
        Assert.That(() => OrtSessions.CreateOptions(new SessionSettings(ExecutionDevice.Cuda)),
            Throws.TypeOf<SettingException>().With.Message.Contains("Microsoft.ML.OnnxRuntime.Gpu.Linux").And.Message.Contains("-p:OrtFlavor=cuda")
                .And.Message.EndsWith("; use Device = cpu"));
    }

    [Test]
    public void RequireCuda_CudaBuildWithoutCudnn_NamesTheMissingLibraries()
    {
        var error = Assert.Throws<SettingException>(() => OrtSessions.RequireCuda(true, name => !name.StartsWith("libcudnn", StringComparison.Ordinal) && name != "libcurand.so.10"));
        Assert.That(error!.Message, Does.Contain("cannot load libcurand.so.10, libcudnn.so.9").And.Contain("LD_LIBRARY_PATH"));
        Assert.That(() => OrtSessions.RequireCuda(true, _ => true), Throws.Nothing);
        Assert.That(OrtSessions.MissingLibraries(_ => false), Is.EqualTo(OrtSessions.CudaLibraries));
    }

    [Test]
    public void Sample_WithOnnxDenoiser_RunsEndToEnd()
    {
        var path = TinyModels.WriteForward(Path.Combine(TempDir, "forward.onnx"), 1, 4);
        using var denoiser = new OnnxDenoiser(path, 1, 4);
        var schedule = new NoiseSchedule(new ScheduleSettings(ScheduleKind.Linear, 100));
        var result = new DiffusionSampler(denoiser, schedule).Sample([1, 2], new SamplerOptions(SamplerKind.Ddim, 10));
        Assert.That(result.Images, Has.Length.EqualTo(2 * 16));
        Assert.That(result.Images, Is.All.InRange(-1f, 1f)); // clipped x̂₀ and η = 0 keep the final image in range
    }

    [Test]
    public void Dispose_ThenPredict_Throws()
    {
        var path = TinyModels.WriteForward(Path.Combine(TempDir, "forward.onnx"), 1, 1);
        var denoiser = new OnnxDenoiser(path, 1, 1);
        denoiser.Dispose();
        Assert.That(() => denoiser.Predict(new float[1], new long[1], 1, new float[1]), Throws.TypeOf<ObjectDisposedException>());
    }
}

public sealed class ModelDirectoryTests : TempDirectoryTest
{
    private ModelMetadata Meta(int size) => new()
    {
        Name = "tiny",
        ImageSize = size,
        Channels = 1,
        Schedule = new ScheduleSettings(ScheduleKind.Linear, 50),
    };

    [Test]
    public void Open_CompleteDirectory_LoadsMetadataAndDenoiser()
    {
        Meta(4).Save(TempDir);
        TinyModels.WriteForward(Path.Combine(TempDir, "forward.onnx"), 1, 4);
        var dir = ModelDirectory.Open(TempDir);
        Assert.That(dir.Metadata.Name, Is.EqualTo("tiny"));
        Assert.That(dir.CreateSchedule().Timesteps, Is.EqualTo(50));
        using var denoiser = dir.OpenDenoiser();
        Assert.That((denoiser.Channels, denoiser.ImageSize), Is.EqualTo((1, 4)));
    }

    [Test]
    public void RequireVjp_Missing_NamesFileAndField()
    {
        Meta(4).Save(TempDir);
        var dir = ModelDirectory.Open(TempDir);
        Assert.That(() => dir.RequireVjp(),
            Throws.TypeOf<ModelFileException>().With.Message.Contains("vjp.onnx").And.Message.Contains("'vjp'"));
    }

    [Test]
    public void OpenDenoiser_GeometryDiffersFromModelJson_GraphContractException()
    {
        Meta(8).Save(TempDir);
        TinyModels.WriteForward(Path.Combine(TempDir, "forward.onnx"), 1, 4);
        Assert.That(() => ModelDirectory.Open(TempDir).OpenDenoiser(), Throws.TypeOf<GraphContractException>());
    }

    [Test]
    public void Open_NoModelJson_ModelFileException()
    {
        Assert.That(() => ModelDirectory.Open(TempDir), Throws.TypeOf<ModelFileException>().With.Message.Contains("model.json"));
        Assert.That(() => ModelDirectory.Open(Path.Combine(TempDir, "none")), Throws.TypeOf<ModelFileException>());
    }

    [Test]
    public void Open_PredictionNotEpsilon_ModelFileException()
    {
        (Meta(4) with { Prediction = "v" }).Save(TempDir);
        Assert.That(() => ModelDirectory.Open(TempDir), Throws.TypeOf<ModelFileException>().With.Message.Contains("'prediction'"));
    }
}
