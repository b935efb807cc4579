using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Gradients;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Store;
using OnnxAttribution.Onnx;
using OnnxAttribution.Training.Tests.Support;
using static TorchSharp.torch;

namespace OnnxAttribution.Training.Tests;

/// <summary>
/// LoRA fine-tunes: adapters beside a frozen base in TorchSharp and in the exported graph, training that changes the adapters
/// alone, a model folder that records its base and whose gradients are the adapters' (checked against autograd, cheaper than
/// the full gradient graph), and the refusals of a base that does not fit.
/// </summary>
[TestFixture]
public sealed class LoraTests
{
    private static readonly LoraSettings Rank2 = new() { Rank = 2, Alpha = 4, Targets = LoraTargets.Conv };
    private string _dir = "";
    private string _base = "";

    [OneTimeSetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("oa-lora-").FullName;
        _base = Path.Combine(_dir, "base");
        TinyAttributionModel.Export(_base);
    }

    [OneTimeTearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private TrainOptions FineTune(LoraSettings settings, string? run, int steps = 4, string? baseModel = null) => new()
    {
        Data = TestData.Bars(16, 16, seed: 4),
        Model = LoraBase.ConfigOf(baseModel ?? _base, settings),
        BaseModel = baseModel ?? _base,
        Recipe = new TrainingRecipe { Steps = steps, BatchSize = 4, LearningRate = 2e-2, WarmupSteps = 1, EmaDecay = 0, CheckpointEvery = 2, Threads = 2 },
        Seed = 3,
        CheckpointDirectory = run,
    };

    [TestCase(LoraTargets.Conv, 8 * 2)]
    [TestCase(LoraTargets.Linear, 6 * 2)]
    [TestCase(LoraTargets.All, 40)]
    public void FreshAdapters_LeaveTheBaseUnchanged_InTorchSharpAndOnnx(LoraTargets targets, int adapterTensors)
    {
        using var baseNet = UNet.FromModelDirectory(_base);
        using var lora = new UNet(LoraBase.ConfigOf(_base, Rank2 with { Targets = targets }), seed: 8);
        lora.LoadBaseWeights(baseNet.GetWeights(), _base);
        Assert.That(lora.ParameterInfos(), Has.Count.EqualTo(adapterTensors));
        Assert.That(lora.ParameterInfos().Select(p => p.Name), Has.All.Contains("_lora."));

        var x = Enumerable.Range(0, 2 * 256).Select(i => MathF.Sin(i * 0.31f)).ToArray();
        long[] t = [20, 700];
        using var scope = NewDisposeScope();
        using (no_grad())
        {
            var expected = baseNet.forward(tensor(x, [2, 1, 16, 16]), tensor(t, [2])).contiguous().data<float>().ToArray();
            var got = lora.forward(tensor(x, [2, 1, 16, 16]), tensor(t, [2])).contiguous().data<float>().ToArray();
            // B starts at zero, so a fresh adapter adds nothing (up to the float32 rounding of libtorch's kernel choice).
            Assert.That(got, Is.EqualTo(expected).Within(1e-6f));
        }
        // The exported graph: the base's initializers plus the adapters', and (B = 0) the base's function under ONNX Runtime.
        var graph = OnnxExporter.BuildForward(lora).Graph;
        Assert.That(graph.Initializer.Select(i => i.Name), Is.SupersetOf(lora.AllParameterInfos().Select(p => p.Name)));
        var folder = Path.Combine(_dir, $"fresh-{targets}");
        OnnxExporter.Export(lora, new ScheduleSettings(ScheduleKind.Linear, 1000), null, folder, "fresh");
        using var baseOnnx = Runtime.ModelDirectory.Open(_base).OpenDenoiser();
        using var loraOnnx = Runtime.ModelDirectory.Open(folder).OpenDenoiser();
        float[] expectedOnnx = new float[x.Length], gotOnnx = new float[x.Length];
        baseOnnx.Predict(x, t, 2, expectedOnnx);
        loraOnnx.Predict(x, t, 2, gotOnnx);
        Assert.That(gotOnnx, Is.EqualTo(expectedOnnx).Within(1e-6f));
    }

    [Test]
    public void Train_ChangesTheAdaptersAlone_AndExportRecordsTheBase_WithGradientsThatMatchAutograd()
    {
        var run = Path.Combine(_dir, "run");
        var options = FineTune(Rank2, run, steps: 6);
        using var baseNet = UNet.FromModelDirectory(_base);
        var baseWeights = baseNet.GetWeights();
        using (var result = DdpmTrainer.Train(options))
        {
            var trained = result.Model.GetWeights();
            foreach (var (name, values) in baseWeights)
            {
                Assert.That(trained[name], Is.EqualTo(values), $"frozen {name} changed");
            }
            Assert.That(trained.Where(w => w.Key.EndsWith("_lora.b", StringComparison.Ordinal)).Any(w => w.Value.Any(v => v != 0)), Is.True,
                "the adapters learned nothing");
            TrainingRunInfo.Of(options, result, "bars", "all").Save(run);
        }

        var model = Path.Combine(_dir, "model");
        ModelExport.Export(run, model, "tiny-lora");
        var meta = ModelMetadata.Load(model);
        Assert.That(meta.Lora, Is.Not.Null);
        Assert.That((meta.Lora!.Base, meta.Lora.BaseSha256, meta.Lora.Rank, meta.Lora.Targets),
            Is.EqualTo((_base, StoreMeta.FingerprintFile(Path.Combine(_base, "forward.onnx")), 2, LoraTargets.Conv)));
        Assert.That(meta.Parameters, Has.Count.EqualTo(16));
        Assert.That(meta.Parameters.Select(p => p.Name), Has.All.Contains("_lora."));

        using var net = UNet.FromModelDirectory(model);
        using var vjp = VjpSession.Open(Path.Combine(model, "vjp.onnx"));
        Assert.That(vjp.GradientOutputs, Has.Count.EqualTo(16));
        var gradientOptions = new GradientCheckOptions([1, 3], [10, 500, 990], 5);
        var cases = GradientCheck.Run(net, vjp, "lora", gradientOptions);
        var report = new GradientCheckReport(cases, gradientOptions.ForwardTolerance, gradientOptions.GradientTolerance);
        Assert.That(report.Passed, Is.True, string.Join("; ", cases.Select(c => $"B={c.BatchSize} worst {c.WorstParameter} {c.GradientMaxRelativeError:E2}")));
        // After training B is not zero, so the gradients of A are not either: both factors are checked, not just B's.
        var x = Enumerable.Range(0, 256).Select(i => MathF.Cos(i * 0.7f)).ToArray();
        var outputs = vjp.Run(x, [300], x, 1, null, []);
        Assert.That(outputs["grad.down0.conv1_lora.a"].Max(MathF.Abs), Is.GreaterThan(1e-6f));
    }

    [Test]
    public void GradientGraph_OfTheAdapters_CostsLessThanOfEveryWeight()
    {
        using var baseNet = UNet.FromModelDirectory(_base);
        using var lora = new UNet(LoraBase.ConfigOf(_base, Rank2), seed: 8);
        lora.LoadBaseWeights(baseNet.GetWeights(), _base);
        var forward = OnnxExporter.BuildForward(lora);
        var adapters = ModelExport.BuildVjp(forward, lora.ParameterInfos());
        var every = ModelExport.BuildVjp(forward, lora.AllParameterInfos());
        double Cost(Onnx.Proto.ModelProto m) =>
            GraphCost.Count(m, 1, m.Graph.Output.Select(o => o.Name).Where(n => n == VjpSession.OutputEps || n.StartsWith("grad.", StringComparison.Ordinal)).ToList()).MultiplyAddFlops;
        Assert.That(adapters.Graph.Output.Count(o => o.Name.StartsWith("grad.", StringComparison.Ordinal)), Is.EqualTo(16));
        Assert.That(Cost(adapters), Is.LessThan(0.9 * Cost(every)));
    }

    [Test]
    public void Resume_OnAnotherBase_IsRefusedNamingBoth()
    {
        var run = Path.Combine(_dir, "resume");
        using (DdpmTrainer.Train(FineTune(Rank2, run, steps: 2)))
        {
        }
        var other = Path.Combine(_dir, "other-base");
        using (var net = new UNet(TinyAttributionModel.Config, seed: 77))
        {
            OnnxExporter.Export(net, new ScheduleSettings(ScheduleKind.Linear, 1000), null, other, "other");
        }
        Assert.That(() => DdpmTrainer.Train(FineTune(Rank2, run, steps: 4, baseModel: other)),
            Throws.TypeOf<UserInputException>().With.Message.Contains($"--base {other}").And.Message.Contains("fine-tunes another base"));
        using var resumed = DdpmTrainer.Train(FineTune(Rank2, run, steps: 4));
        Assert.That(resumed.Steps, Is.EqualTo(4));
    }

    [Test]
    public void BaseThatDoesNotFit_IsRefusedNamingIt()
    {
        Assert.That(() => LoraSettings.ParseTargets("attention", "--lora-targets"),
            Throws.TypeOf<UserInputException>().With.Message.Contains("no attention layers"));
        Assert.That(() => LoraBase.ConfigOf(_base, Rank2 with { Rank = 0 }), Throws.TypeOf<UserInputException>().With.Message.Contains("rank is 0"));
        Assert.That(() => LoraBase.ConfigOf(Path.Combine(_dir, "nowhere"), Rank2), Throws.TypeOf<UserInputException>().With.Message.Contains("not found"));
        var wider = LoraBase.ConfigOf(_base, Rank2) with { BaseChannels = 16 };
        Assert.That(() => LoraBase.Weights(_base, wider), Throws.TypeOf<UserInputException>().With.Message.Contains("architecture"));
        Assert.That(() => DdpmTrainer.Train(FineTune(Rank2, null) with { BaseModel = null }),
            Throws.TypeOf<UserInputException>().With.Message.Contains("fine-tuned from a base model"));

        var lora = Path.Combine(_dir, "lora-as-base");
        using (var net = new UNet(LoraBase.ConfigOf(_base, Rank2), seed: 1))
        {
            OnnxExporter.Export(net, new ScheduleSettings(ScheduleKind.Linear, 1000), null, lora, "lora",
                lora: LoraBase.Spec(_base, "0", Rank2));
        }
        Assert.That(() => LoraBase.ConfigOf(lora, Rank2), Throws.TypeOf<UserInputException>().With.Message.Contains("itself a LoRA fine-tune"));
    }

    [Test]
    public void RandomizedAdapters_FreshNetwork_GradientCheckPassesWithNonzeroGradientsOfA()
    {
        using var lora = new UNet(LoraBase.ConfigOf(_base, Rank2 with { Targets = LoraTargets.All }), seed: 8);
        lora.RandomizeAdapters(8);
        var graph = ModelExport.BuildVjp(OnnxExporter.BuildRunnable(lora), lora.ParameterInfos());
        using var session = VjpSession.FromBytes(Google.Protobuf.MessageExtensions.ToByteArray(graph), "fresh lora", null, null);
        var options = new GradientCheckOptions([1, 3], [0, 500], 3);
        var cases = GradientCheck.Run(lora, session, "fresh lora", options);
        Assert.That(new GradientCheckReport(cases, options.ForwardTolerance, options.GradientTolerance).Passed, Is.True,
            string.Join("; ", cases.Select(c => $"worst {c.WorstParameter} {c.GradientMaxRelativeError:E2}")));
        Assert.That(cases.SelectMany(c => c.Layers).Select(l => l.Parameter), Has.Some.EndsWith("_lora.a"));
        // Without the draw B is zero and so is every gradient of A: the check would compare zeros with zeros.
        var x = Enumerable.Range(0, 256).Select(i => MathF.Cos(i * 0.17f)).ToArray();
        var outputs = session.Run(x, [300], x, 1, null, []);
        var gradientsOfA = outputs.Where(o => o.Key.EndsWith("_lora.a", StringComparison.Ordinal)).ToList();
        Assert.That(gradientsOfA, Is.Not.Empty);
        Assert.That(gradientsOfA, Has.All.Matches<KeyValuePair<string, float[]>>(o => o.Value.Any(v => v != 0)), "every A has a nonzero gradient");
    }
}
