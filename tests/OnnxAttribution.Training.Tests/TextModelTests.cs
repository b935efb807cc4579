using Google.Protobuf;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Gradients;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Onnx;
using OnnxAttribution.Training.Tests.Support;
using static TorchSharp.torch;

namespace OnnxAttribution.Training.Tests;

/// <summary>
/// A text-conditioned U-Net end to end: its caption encoder exported as its own graph and composed in front of the forward
/// graph, the composed graph against TorchSharp, its gradient graph (cross-attention included, encoder excluded) against
/// autograd, and featurization with each row's own caption.
/// </summary>
[TestFixture]
public sealed class TextModelTests
{
    private const int Rows = 16;
    private static readonly UNetConfig Config = TinyAttributionModel.Config with
    {
        Text = new TextConditionSettings { ClassNames = DatasetLocator.FashionMnistClasses, Width = 16 },
    };
    private string _dir = "";
    private string _model = "";
    private ImageDataset _data = null!;

    [OneTimeSetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("oa-text-").FullName;
        _model = Path.Combine(_dir, "model");
        using var net = new UNet(Config, seed: 5);
        var parameters = net.ParameterInfos();
        OnnxExporter.Export(net, new ScheduleSettings(ScheduleKind.Linear, 1000), null, _model, "tiny-text",
            (forward, dir) => OnnxModelFile.Save(ModelExport.BuildVjp(forward, parameters), Path.Combine(dir, "vjp.onnx")),
            classNames: DatasetLocator.FashionMnistClasses);
        _data = TinyAttributionModel.EmbeddedRows(Rows);
    }

    [OneTimeTearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void Export_WritesTheEncoderAndTheTextCondition_TheComposedGraphMatchesTorchSharp()
    {
        var meta = ModelMetadata.Load(_model);
        var c = meta.Condition!;
        Assert.That((c.Kind, c.Input, c.EmbeddingInput, c.Encoder, c.NullLabel), Is.EqualTo((ConditionKind.Text, "prompt", "context", "text-encoder.onnx", (long?)0)));
        Assert.That(c.Vocabulary!.Take(4), Is.EqualTo(new[] { "", "a", "dark", "light" }));
        Assert.That(File.Exists(Path.Combine(_model, "text-encoder.onnx")), Is.True);
        Assert.That(meta.Parameters.Select(p => p.Name), Has.None.StartsWith("text."), "the caption encoder is not attributed");
        Assert.That(meta.Parameters.Select(p => p.Name), Does.Contain("mid_attn.k.weight"));
        Assert.That(GradientModel.ModelFilesOf(ModelDirectory.Open(_model)).Keys, Does.Contain("text-encoder.onnx"), "stores fingerprint the encoder");

        using var net = UNet.FromModelDirectory(_model);
        using var denoiser = ModelDirectory.Open(_model).OpenDenoiser();
        int d = Config.ImageSize * Config.ImageSize;
        var x = Enumerable.Range(0, 3 * d).Select(i => MathF.Sin(i * 0.37f)).ToArray();
        long[] t = [10, 500, 990];
        long[] y = [c.EncodePrompt("a dark sneaker", "test"), c.EncodePrompt("A LIGHT ankle-boot", "test"), 0];
        var eps = new float[3 * d];
        denoiser.Predict(x, t, y, 3, eps);
        using var scope = NewDisposeScope();
        float[] reference;
        using (no_grad())
        {
            reference = net.Forward(tensor(x, [3, 1, 16, 16]), tensor(t, [3]), tensor(y, [3])).contiguous().data<float>().ToArray();
        }
        Assert.That(eps, Is.EqualTo(reference).Within(1e-5f));

        // The prompt matters, word by word: another shade changes that image's prediction and no other.
        var other = new float[3 * d];
        denoiser.Predict(x, t, [c.EncodePrompt("a light sneaker", "test"), y[1], 0], 3, other);
        Assert.That(other.AsSpan(0, d).SequenceEqual(eps.AsSpan(0, d)), Is.False);
        Assert.That(other.AsSpan(d).SequenceEqual(eps.AsSpan(d)), Is.True);
    }

    [Test]
    public void FromModelDirectory_ReadsTheEncoderBack_EveryWeightAsExported()
    {
        using var original = new UNet(Config, seed: 5);
        using var loaded = UNet.FromModelDirectory(_model);
        var expected = original.GetWeights();
        var actual = loaded.GetWeights();
        Assert.That(actual.Keys.Where(k => k.StartsWith("text.", StringComparison.Ordinal)), Is.Not.Empty);
        Assert.That(actual.Keys, Is.EquivalentTo(expected.Keys));
        foreach (var (name, values) in expected)
        {
            Assert.That(actual[name], Is.EqualTo(values), name);
        }
    }

    [Test]
    public void GradientCheck_TextGraph_MatchesAutogradThroughTheCrossAttention()
    {
        using var net = new UNet(Config, seed: 9);
        var graph = ModelExport.BuildVjp(OnnxExporter.BuildRunnable(net), net.ParameterInfos());
        using var session = VjpSession.FromBytes(graph.ToByteArray(), "text", null, OnnxExporter.ConditionOf(Config));
        var options = new GradientCheckOptions([1, 4], [0, 250, 999], 3);
        var cases = GradientCheck.Run(net, session, "text", options);
        var report = new GradientCheckReport(cases, options.ForwardTolerance, options.GradientTolerance);
        Assert.That(report.Passed, Is.True, string.Join("; ", cases.Select(c => $"B={c.BatchSize} worst {c.WorstParameter} {c.GradientMaxRelativeError:E2}")));
        var layers = cases.SelectMany(c => c.Layers).Select(l => l.Parameter).ToHashSet();
        Assert.That(layers, Is.SupersetOf(new[] { "mid_attn.q.weight", "mid_attn.k.weight", "mid_attn.v.weight", "mid_attn.out.weight" }));
        Assert.That(layers, Has.None.StartsWith("text."));
        Assert.That(session.GradientOutputs, Has.None.Contains("text."), "no gradient of the caption encoder is computed");
    }

    [Test]
    public void Featurize_TrainingImageUnderItsCaption_IsItsRowBitForBit_AndAnotherCaptionIsNot()
    {
        var store = Path.Combine(_dir, "store");
        TrakEngine.Featurize(new FeaturizeOptions
        {
            ModelDirectory = _model,
            Data = _data,
            Plan = new FeaturizationPlan([100, 600], 1, 5, MeasurementKind.Square),
            Projection = new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, 64, 11),
            OutDirectory = store,
            BatchSize = 5,
        }).Dispose();
        PreconditionerBuilder.Finalize(store, 1e-2);
        using var trak = TrakScorer.Open(store, _model);
        Assert.That(trak.Store.Meta.Settings[DatasetConditions.ConditionSetting], Is.EqualTo("text:prompt"));
        var c = ModelMetadata.Load(_model).Condition!;
        var captions = Captions.Packed(c, _data, DatasetLocator.FashionMnistClasses, "test");
        Assert.That(trak.Store.Meta.Settings[DatasetConditions.FingerprintSetting], Is.EqualTo(DatasetConditions.Fingerprint(captions)));
        Assert.That(captions.Select(c.DecodePrompt).Distinct().Count(), Is.GreaterThan(3), "rows get captions of several classes and shades");
        int d = _data.ImageLength;
        foreach (int row in new[] { 0, 7, 15 })
        {
            var image = _data.Pixels.Slice(row * d, d).ToArray();
            var stored = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(trak.Store.GetRowBytes(row)).ToArray();
            string caption = c.DecodePrompt(captions[row]);
            string shifted = caption.Contains("dark", StringComparison.Ordinal) ? caption.Replace("dark", "light", StringComparison.Ordinal)
                : caption.Replace("light", "dark", StringComparison.Ordinal);
            var own = trak.Features(image, 1, [c.EncodePrompt(caption, "test")]);
            var other = trak.Features(image, 1, [c.EncodePrompt(shifted, "test")]);
            Assert.That(own.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(stored.Select(BitConverter.SingleToInt32Bits)), $"row {row}: {caption}");
            Assert.That(other.Select(BitConverter.SingleToInt32Bits), Is.Not.EqualTo(stored.Select(BitConverter.SingleToInt32Bits)), $"row {row}: {shifted}");
        }
        Assert.That(() => trak.Features(_data.Pixels[..d].ToArray(), 1), Throws.ArgumentException.With.Message.Contains("input 'prompt'"));
    }

    [Test]
    public void Kfac_QueryUnderItsPrompt_DiffersFromAnotherPrompt_AndNeedsOne()
    {
        var store = Path.Combine(_dir, "kfac");
        AttributionMethods.Find("kfac").Build(new MethodBuildRequest
        {
            ModelDirectory = _model,
            Data = _data,
            Source = new StoreSource(_model, "embedded", $"0:{Rows}", 16),
            OutDirectory = store,
            Settings = new MethodSettings { Timesteps = 2, Dim = 256, BatchSize = 8, Seed = 2 },
        });
        using var scorer = AttributionMethods.Open(store, _model);
        var c = ModelMetadata.Load(_model).Condition!;
        var image = _data.Image(4).ToArray();
        var own = scorer.Scores([new AttributionQuery("own", image) { Condition = c.EncodePrompt("a dark sneaker", "test") }]);
        var other = scorer.Scores([new AttributionQuery("other", image) { Condition = c.EncodePrompt("a light coat", "test") }]);
        Assert.That(own, Has.All.Matches<float>(float.IsFinite));
        Assert.That(own, Is.Not.EqualTo(other));
        Assert.That(() => scorer.Scores([new AttributionQuery("none", image)]), Throws.ArgumentException.With.Message.Contains("input 'prompt'"));
    }

    [Test]
    public void Training_TextModel_TrainsTheEncoderWithTheUNet()
    {
        var options = new TrainOptions
        {
            Data = _data,
            Model = Config,
            Recipe = new TrainingRecipe { Steps = 4, BatchSize = 8, LearningRate = 1e-3, EmaDecay = 0.9, Threads = 1 },
            Seed = 4,
        };
        using var before = new UNet(Config, seed: 4); // the trainer's initialisation (seed = the options' seed)
        using var result = DdpmTrainer.Train(options);
        Assert.That(double.IsFinite(result.FinalLoss), Is.True);
        var trained = result.Model.GetWeights();
        var initial = before.GetWeights();
        Assert.That(trained["text.fc1.weight"], Is.Not.EqualTo(initial["text.fc1.weight"]), "the caption encoder is trained");
        Assert.That(trained["mid_attn.k.weight"], Is.Not.EqualTo(initial["mid_attn.k.weight"]));
    }
}
