using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Onnx.Proto;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Gradients;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Core.Tests.Attribution;

/// <summary>
/// The pairs summed and projected inside ONNX Runtime's graph (<see cref="GradientReduction.Device"/>, what CUDA runs) against
/// the host's sum and projection, on the shipped model with the CPU provider: the same code path as on the GPU, bound to CPU
/// tensors through IOBinding.
/// </summary>
public sealed class ReducedGradientTests : TempDirectoryTest
{
    private static readonly ImageDataset Data = new DatasetLocator().Load("embedded", "0:5", 16);

    private static string Model => Path.Combine(RepositoryRoot(), "models", "fm16");

    /// <summary>Features, losses and norms of the first five images, and whether the extractor reduced them in the graph.</summary>
    private static (float[] Features, float[] Losses, float[] Norms, bool InGraph) Extract(ProjectorKind projector, FeaturizationPlan plan,
        GradientReduction reduction, bool norms)
    {
        var projection = new ProjectionSettings(projector, ProjectionKind.Rademacher, 128, 3);
        using var model = new GradientModel(Model, plan, projection, new SessionSettings(ExecutionDevice.Cpu, 1) { Reduction = reduction });
        var extractor = model.Extractor;
        int count = Data.Count;
        var images = new float[count * Data.Channels * Data.Height * Data.Width];
        for (int i = 0; i < count; i++)
        {
            Data.Image(i).CopyTo(images.AsSpan(i * Data.Image(i).Length));
        }
        var features = new float[count * extractor.Dim];
        var losses = new float[count];
        var gradientNorms = norms ? new float[count] : [];
        extractor.Extract(images, count, features, losses, default, gradientNorms);
        return (features, losses, gradientNorms, extractor.ReducedInGraph);
    }

    /// <summary>Each value within <paramref name="relative"/> of the largest magnitude of <paramref name="expected"/>.</summary>
    private static void AssertClose(float[] actual, float[] expected, double relative, string what)
    {
        Assert.That(actual, Has.Length.EqualTo(expected.Length), what);
        double scale = expected.Max(MathF.Abs);
        Assert.That(scale, Is.GreaterThan(0), what);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.That(actual[i], Is.EqualTo(expected[i]).Within(relative * scale), $"{what}[{i}]");
        }
    }

    [TestCase(ProjectorKind.Dense)]
    [TestCase(ProjectorKind.Factored)]
    public void Device_AgreesWithHost_FeaturesLossesNorms(ProjectorKind projector)
    {
        var plan = new FeaturizationPlan([100, 400, 800], 1, 7, MeasurementKind.Loss);
        bool dense = projector == ProjectorKind.Dense;

        var host = Extract(projector, plan, GradientReduction.Host, dense);
        var device = Extract(projector, plan, GradientReduction.Device, dense);

        Assert.That((host.InGraph, device.InGraph), Is.EqualTo((false, true)));
        AssertClose(device.Features, host.Features, 1e-4, "features");
        AssertClose(device.Losses, host.Losses, 1e-5, "losses");
        if (dense)
        {
            AssertClose(device.Norms, host.Norms, 1e-5, "norms");
        }
        Assert.That(device.Features, Is.Not.EqualTo(new float[device.Features.Length]));
    }

    [Test]
    public void Device_PairsInTwoRuns_AgreesWithHost_AndNormsFallBackToTheHost()
    {
        // 2 timesteps × 9 draws = 18 pairs: more than one run holds (16), so the graph returns two partial sums.
        var plan = new FeaturizationPlan([200, 700], 9, 11, MeasurementKind.Square);

        var host = Extract(ProjectorKind.Dense, plan, GradientReduction.Host, norms: false);
        var device = Extract(ProjectorKind.Dense, plan, GradientReduction.Device, norms: false);
        var hostNorms = Extract(ProjectorKind.Dense, plan, GradientReduction.Host, norms: true);
        var deviceNorms = Extract(ProjectorKind.Dense, plan, GradientReduction.Device, norms: true);

        AssertClose(device.Features, host.Features, 1e-4, "features");
        AssertClose(device.Losses, host.Losses, 1e-5, "losses");
        // The norm is of the sum over all 18 pairs, which no single run sees: that call is the host's, bit for bit.
        Assert.That(deviceNorms.Features, Is.EqualTo(hostNorms.Features));
        Assert.That(deviceNorms.Norms, Is.EqualTo(hostNorms.Norms));
    }

    /// <summary>
    /// The host's way reads each run's gradients where ONNX Runtime left them; the pair-by-pair way (what a batch of pairs
    /// goes through) copies them out per pair first. Same products in the same order per value: the same bits, on 18 pairs in
    /// two runs of three images.
    /// </summary>
    [TestCase(MeasurementKind.Loss)]
    [TestCase(MeasurementKind.Square)]
    public void Host_GradientsReadInPlace_SameBitsAsPairByPair(MeasurementKind measurement)
    {
        var plan = new FeaturizationPlan([200, 700], 9, 11, measurement);
        using var model = new GradientModel(Model, plan, new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, 64, 3),
            new SessionSettings(ExecutionDevice.Cpu, 1));
        var source = model.Extractor.Source;
        int count = 3, d = source.ExampleLength;
        var images = new float[count * d];
        for (int i = 0; i < count; i++)
        {
            Data.Image(i).CopyTo(images.AsSpan(i * d));
        }
        var inPlace = new float[count * source.Dimension];
        var pairByPair = new float[count * source.Dimension];

        var losses = new float[count];
        var pairLosses = new double[count];
        source.Compute(images, count, inPlace, losses);
        source.Compute(source.Clean(images, count), pairByPair);
        source.ForEachPair(images, count, source.GradientOutputs, default, pair =>
        {
            for (int b = 0; b < count; b++)
            {
                pairLosses[b] += pair.Weight * pair.Loss(b);
            }
        });

        Assert.That(inPlace, Is.EqualTo(pairByPair));
        Assert.That(losses, Is.EqualTo(pairLosses.Select(v => (float)v).ToArray()));
        Assert.That(inPlace.Count(v => v != 0), Is.GreaterThan(inPlace.Length / 2));
    }

    /// <summary>Featurize in two streams sharing one reduced session (a binding per run), against the host's one stream.</summary>
    [Test]
    public void Featurize_DeviceReductionInTwoStreams_AgreesWithTheHost()
    {
        var data = new DatasetLocator().Load("embedded", "0:9", 16);
        FeaturizeOptions Options(string name, GradientReduction reduction, int streams) => new()
        {
            ModelDirectory = Model,
            Data = data,
            Plan = new FeaturizationPlan([100, 600], 1, 3, MeasurementKind.Square),
            Projection = new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, 96, 5),
            OutDirectory = Path.Combine(TempDir, name),
            BatchSize = 4,
            Streams = streams,
            Session = SessionSettings.Default with { Reduction = reduction },
        };
        using var host = TrakEngine.Featurize(Options("host", GradientReduction.Host, 1));
        using var device = TrakEngine.Featurize(Options("device", GradientReduction.Device, 2));

        var expected = new float[host.Rows * host.Dim];
        var found = new float[expected.Length];
        for (int r = 0; r < host.Rows; r++)
        {
            host.ReadRow(r, expected.AsSpan(r * host.Dim, host.Dim));
            device.ReadRow(r, found.AsSpan(r * host.Dim, host.Dim));
        }
        AssertClose(found, expected, 1e-4, "features of 9 rows");
    }

    [Test]
    public void ResolvedReduction_AutoIsTheHostOnCpuAndTheGraphOnCuda()
    {
        Assert.That(SessionSettings.Default.ResolvedReduction, Is.EqualTo(GradientReduction.Host));
        Assert.That(new SessionSettings(ExecutionDevice.Cuda).ResolvedReduction, Is.EqualTo(GradientReduction.Device));
        Assert.That((SessionSettings.Default with { Reduction = GradientReduction.Device }).ResolvedReduction, Is.EqualTo(GradientReduction.Device));
        Assert.That((new SessionSettings(ExecutionDevice.Cuda) { Reduction = GradientReduction.Host }).ResolvedReduction, Is.EqualTo(GradientReduction.Host));
    }

    [Test]
    public void Wrap_GraphWithAnExplicitCotangent_IsRefused()
    {
        var g = new Onnx.GraphBuilder("explicit");
        g.Input(VjpSession.InputXt, Onnx.TensorData.Float, -1, 1, 4, 4);
        g.Input(VjpSession.InputCotangent, Onnx.TensorData.Float, -1, 1, 4, 4);
        g.Node("Identity", [VjpSession.InputXt], VjpSession.OutputEps);
        g.Output(VjpSession.OutputEps, Onnx.TensorData.Float, -1, 1, 4, 4);
        ModelProto model = g.Build();

        var e = Assert.Throws<GraphContractException>(() => ReducedGradientGraph.Wrap(model, null, VjpSession.OutputEps, 4));
        Assert.That(e!.Message, Does.Contain("target and cotangent_weights"));
    }

    [Test]
    public void Open_ProjectionLargerThanTheLimit_NamesTheSetting()
    {
        var projection = new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, 40_000, 3);
        var session = new SessionSettings(ExecutionDevice.Cpu, 1) { Reduction = GradientReduction.Device };
        var plan = new FeaturizationPlan([100], 1, 7, MeasurementKind.Loss);

        // 283,105 parameters × 40,000 × 4 bytes = 42 GiB: refused before anything is allocated.
        var e = Assert.Throws<SettingException>(() => new GradientModel(Model, plan, projection, session).Dispose());
        Assert.That(e!.Message, Does.Contain("larger than the 32 GiB"));
    }
}
