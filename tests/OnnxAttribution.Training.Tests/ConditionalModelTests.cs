using Google.Protobuf;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Gradients;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;
using OnnxAttribution.Onnx;
using OnnxAttribution.Training.Tests.Support;
using static TorchSharp.torch;

namespace OnnxAttribution.Training.Tests;

/// <summary>
/// A class-conditional U-Net end to end: trained with labels, exported with a label input, its gradient graph against
/// autograd, featurized with each row's own label and queried under a label.
/// </summary>
[TestFixture]
public sealed class ConditionalModelTests
{
    private const int Rows = 24;
    private static readonly UNetConfig Config = TinyAttributionModel.Config with { Classes = 10 };
    private string _dir = "";
    private string _model = "";
    private ImageDataset _data = null!;

    [OneTimeSetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("oa-conditional-").FullName;
        _model = Path.Combine(_dir, "model");
        using var net = new UNet(Config, seed: 5);
        var parameters = net.ParameterInfos();
        OnnxExporter.Export(net, new ScheduleSettings(ScheduleKind.Linear, 1000), null, _model, "tiny-conditional",
            (forward, dir) => OnnxModelFile.Save(ModelExport.BuildVjp(forward, parameters), Path.Combine(dir, "vjp.onnx")),
            classNames: DatasetLocator.FashionMnistClasses);
        _data = TinyAttributionModel.EmbeddedRows(Rows);
    }

    [OneTimeTearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void Export_RecordsTheLabelInput_AndTheForwardGraphMatchesTorchSharp()
    {
        var meta = ModelMetadata.Load(_model);
        Assert.That(meta.Condition, Is.Not.Null);
        Assert.That((meta.Condition!.Kind, meta.Condition.Input, meta.Condition.Classes, meta.Condition.NullLabel),
            Is.EqualTo((ConditionKind.Label, "y", 10, (long?)10)));
        Assert.That(meta.Condition.NameOf(7), Is.EqualTo("Sneaker"));

        using var net = UNet.FromModelDirectory(_model);
        using var denoiser = ModelDirectory.Open(_model).OpenDenoiser();
        int d = Config.Channels * Config.ImageSize * Config.ImageSize;
        var x = Enumerable.Range(0, 3 * d).Select(i => MathF.Sin(i * 0.37f)).ToArray();
        long[] t = [10, 500, 990];
        long[] y = [7, 0, 10];
        var eps = new float[3 * d];
        denoiser.Predict(x, t, y, 3, eps);
        using var scope = NewDisposeScope();
        float[] reference;
        using (no_grad())
        {
            reference = net.Forward(tensor(x, [3, 1, 16, 16]), tensor(t, [3]), tensor(y, [3])).contiguous().data<float>().ToArray();
        }
        Assert.That(eps, Is.EqualTo(reference).Within(1e-5f));

        // The label matters: another label gives another prediction.
        var other = new float[3 * d];
        denoiser.Predict(x, t, [1, 0, 10], 3, other);
        Assert.That(other.AsSpan(0, d).SequenceEqual(eps.AsSpan(0, d)), Is.False);
        Assert.That(other.AsSpan(d).SequenceEqual(eps.AsSpan(d)), Is.True);
    }

    [Test]
    public void Denoiser_WithoutLabelsOrOutOfRange_Refused()
    {
        using var denoiser = ModelDirectory.Open(_model).OpenDenoiser();
        int d = Config.ImageSize * Config.ImageSize;
        var x = new float[d];
        var eps = new float[d];
        Assert.That(() => denoiser.Predict(x, [5], 1, eps), Throws.ArgumentException.With.Message.Contains("input 'y'"));
        Assert.That(() => denoiser.Predict(x, [5], [11], 1, eps), Throws.ArgumentException.With.Message.Contains("condition value 11"));
    }

    [Test]
    public void GradientCheck_ConditionalGraph_MatchesAutogradIncludingTheLabelTable()
    {
        using var net = new UNet(Config, seed: 9);
        var forward = OnnxExporter.BuildForward(net);
        var graph = ModelExport.BuildVjp(forward, net.ParameterInfos());
        using var session = VjpSession.FromBytes(graph.ToByteArray(), "conditional", null, OnnxExporter.ConditionOf(Config));
        var options = new GradientCheckOptions([1, 4], [0, 250, 999], 3);
        var cases = GradientCheck.Run(net, session, "conditional", options);
        var report = new GradientCheckReport(cases, options.ForwardTolerance, options.GradientTolerance);
        Assert.That(report.Passed, Is.True, string.Join("; ", cases.Select(c => $"B={c.BatchSize} worst {c.WorstParameter} {c.GradientMaxRelativeError:E2}")));
        var table = cases.SelectMany(c => c.Layers).Where(l => l.Parameter == "label.weight").ToList();
        Assert.That(table, Is.Not.Empty);
        Assert.That(table.Max(l => l.MaxAbsError), Is.LessThan(1e-4));
    }

    [Test]
    public void Featurize_TrainingImageWithItsLabel_IsItsRowBitForBit_AndAnotherLabelIsNot()
    {
        var store = Path.Combine(_dir, "store");
        using (TrakEngine.Featurize(new FeaturizeOptions
        {
            ModelDirectory = _model,
            Data = _data,
            Plan = new FeaturizationPlan([100, 600], 1, 5, MeasurementKind.Square),
            Projection = new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, 64, 11),
            OutDirectory = store,
            BatchSize = 5,
        }))
        {
        }
        PreconditionerBuilder.Finalize(store, 1e-2);
        using var trak = TrakScorer.Open(store, _model);
        Assert.That(trak.Store.Meta.Settings[DatasetConditions.ConditionSetting], Is.EqualTo("label:y"));
        int d = _data.ImageLength;
        foreach (int row in new[] { 0, 13, 23 })
        {
            var image = _data.Pixels.Slice(row * d, d).ToArray();
            long label = _data.Labels![row];
            var stored = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(trak.Store.GetRowBytes(row)).ToArray();
            var own = trak.Features(image, 1, [label]);
            var other = trak.Features(image, 1, [(label + 1) % 10]);
            Assert.That(own.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(stored.Select(BitConverter.SingleToInt32Bits)), $"row {row}");
            Assert.That(other.Select(BitConverter.SingleToInt32Bits), Is.Not.EqualTo(stored.Select(BitConverter.SingleToInt32Bits)), $"row {row}");
        }
        Assert.That(() => trak.Features(_data.Pixels[..d].ToArray(), 1), Throws.ArgumentException.With.Message.Contains("input 'y'"));
    }

    [Test]
    public void Kfac_QueryUnderItsLabel_DiffersFromAnotherLabel_AndNeedsOne()
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
        var image = _data.Image(4).ToArray();
        long label = _data.Labels![4];
        var own = scorer.Scores([new AttributionQuery("own", image) { Condition = label }]);
        var other = scorer.Scores([new AttributionQuery("other", image) { Condition = (label + 3) % 10 }]);
        Assert.That(own, Has.All.Matches<float>(float.IsFinite));
        Assert.That(own, Is.Not.EqualTo(other));
        Assert.That(() => scorer.Scores([new AttributionQuery("none", image)]), Throws.ArgumentException.With.Message.Contains("input 'y'"));
    }

    [Test]
    public void Append_ToAConditionalStore_SameFeaturesAndLabelRecordAsAStoreBuiltOnAllRows()
    {
        string Build(string name, string subset)
        {
            string dir = Path.Combine(_dir, name);
            TrakEngine.Featurize(new FeaturizeOptions
            {
                ModelDirectory = _model,
                Data = SubsetSpec.Parse(subset).Apply(Repository.Locator.Load("embedded")),
                Subset = subset,
                Plan = new FeaturizationPlan([100, 600], 1, 5, MeasurementKind.Square),
                Projection = new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, 64, 2),
                Method = "d-trak",
                OutDirectory = dir,
                BatchSize = 4,
            }).Dispose();
            new StoreSource(_model, "embedded", subset, 16).Save(dir);
            PreconditionerBuilder.Finalize(dir, 1e-2);
            return dir;
        }
        string appended = Build("append-a", "0:14");
        string whole = Build("append-ab", "0:22");
        StoreUpdate.Append(new AppendRequest
        {
            StoreDirectory = appended,
            Data = SubsetSpec.Parse("14:22").Apply(Repository.Locator.Load("embedded")),
            DataName = "embedded",
            Subset = "14:22",
            BatchSize = 3,
        });
        using var a = FeatureStore.Open(appended);
        using var b = FeatureStore.Open(whole);
        Assert.That(a.Meta.Settings[DatasetConditions.FingerprintSetting], Is.EqualTo(b.Meta.Settings[DatasetConditions.FingerprintSetting]));
        Assert.That(Enumerable.Range(0, 22).Select(r => a.GetRowBytes(r).ToArray()), Is.EqualTo(Enumerable.Range(0, 22).Select(r => b.GetRowBytes(r).ToArray())),
            "features, each row under its own label");
    }

    [Test]
    public void Featurize_DatasetWithoutLabels_RefusedNamingIt()
    {
        var unlabelled = new ImageDataset("no-labels", 2, 1, 16, 16, _data.Pixels[..(2 * _data.ImageLength)].ToArray());
        Assert.That(() => TrakEngine.Featurize(new FeaturizeOptions
        {
            ModelDirectory = _model,
            Data = unlabelled,
            Plan = new FeaturizationPlan([100], 1, 5, MeasurementKind.Square),
            Projection = new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, 16, 11),
            OutDirectory = Path.Combine(_dir, "unlabelled"),
        }), Throws.TypeOf<UserInputException>().With.Message.Contains("'no-labels' has no labels"));
        Assert.That(Directory.Exists(Path.Combine(_dir, "unlabelled", StoreFiles.Features)), Is.False);
    }

    [Test]
    public void Methods_EveryOneAttributesConditionalModels_AndOneThatDoesNotIsRefused()
    {
        foreach (var name in new[] { "trak", "d-trak", "das", "gradient-cosine", "pixel", "random", "kfac", "ekfac", "tracin", "retrac", "journey-trak", "ensemble" })
        {
            Assert.That(() => AttributionMethods.RequireConditionSupport(AttributionMethods.Find(name), _model), Throws.Nothing, name);
        }
        Assert.That(() => AttributionMethods.RequireConditionSupport(new UnconditionalOnly(), _model),
            Throws.TypeOf<UserInputException>().With.Message.Contains("method unconditional-only does not attribute conditional models"));
    }

    /// <summary>A method whose <see cref="IAttributionMethod.Capabilities"/> leave conditional models out.</summary>
    private sealed class UnconditionalOnly : IAttributionMethod
    {
        public string Name => "unconditional-only";

        public string Summary => "a test double";

        public IReadOnlyCollection<string> SettingsUsed => [];

        public MethodCapabilities Capabilities { get; } = new() { QueryTimesteps = true, Updatable = true };

        public void Build(MethodBuildRequest request, CancellationToken cancel = default) => throw new NotSupportedException();

        public IAttributionScorer Open(string storeDirectory, string modelDirectory, SessionSettings session) => throw new NotSupportedException();
    }

    [Test]
    public void Train_Conditional_LearnsWithLabels_AndRefusesUnlabelledData()
    {
        var data = TestData.Bars(32, 16, seed: 2);
        var labelled = new ImageDataset("bars", data.Count, 1, 16, 16, data.Pixels.ToArray(), Enumerable.Range(0, data.Count).Select(i => i % 3).ToArray());
        var options = new TrainOptions
        {
            Data = labelled,
            Model = Config with { Classes = 3 },
            Recipe = new TrainingRecipe { Steps = 3, BatchSize = 8, LearningRate = 1e-3, WarmupSteps = 1, EmaDecay = 0.9, Threads = 2 },
            Seed = 1,
        };
        using (var result = DdpmTrainer.Train(options))
        {
            Assert.That(result.Losses, Has.Count.EqualTo(3).And.All.Matches<double>(double.IsFinite));
            Assert.That(result.Ema.named_parameters().Any(p => p.name == "label.weight"), Is.True);
        }
        var unlabelled = new ImageDataset("bars", data.Count, 1, 16, 16, data.Pixels.ToArray());
        Assert.That(() => DdpmTrainer.Train(options with { Data = unlabelled }),
            Throws.TypeOf<UserInputException>().With.Message.Contains("has no labels"));
        Assert.That(() => DdpmTrainer.Train(options with { Model = Config with { Classes = 2 } }),
            Throws.TypeOf<UserInputException>().With.Message.Contains("has label 2"));
    }
}
