using Google.Protobuf;
using OnnxAttribution.Runtime.Gradients;
using OnnxAttribution.Onnx.Differentiation;

namespace OnnxAttribution.Training.Tests;

/// <summary>The foundation: the exported gradient graph against TorchSharp autograd (docs/design.md's bar).</summary>
[TestFixture]
public sealed class GradientCheckTests
{
    [TestCase(11L)]
    [TestCase(12L)]
    public void Run_FreshlyInitialisedUNet_MatchesAutograd(long seed)
    {
        using var net = new UNet(new UNetConfig(), seed);
        var forward = OnnxExporter.BuildForward(net);
        var vjp = VjpBuilder.Build(forward, new VjpOptions { Parameters = net.ParameterInfos().Select(p => p.Name).ToList(), KroneckerFactors = true });
        using var session = VjpSession.FromBytes(vjp.ToByteArray(), $"fresh seed {seed}");
        var options = GradientCheckOptions.Default with { Seed = seed };
        var cases = GradientCheck.Run(net, session, $"fresh-{seed}", options);
        var report = new GradientCheckReport(cases, options.ForwardTolerance, options.GradientTolerance);

        Assert.That(cases.Select(c => c.BatchSize).Distinct(), Is.EquivalentTo(new[] { 1, 8 }));
        Assert.That(cases.Max(c => c.ForwardMaxAbsError), Is.LessThanOrEqualTo(1e-5));
        Assert.That(cases.Max(c => c.GradientMaxRelativeError), Is.LessThanOrEqualTo(1e-4),
            string.Join("; ", cases.Select(c => $"B={c.BatchSize} worst {c.WorstParameter} {c.GradientMaxRelativeError:E2}")));
        Assert.That(report.Passed, Is.True);
        Assert.That(cases[0].Layers, Has.Count.EqualTo(net.ParameterInfos().Count));
    }

    [Test]
    public void Run_OneChannelPerGroup_VanishingBiasGradientsAreNotNoiseAgainstNoise()
    {
        // With 8 groups of 8 channels a bias added just before a GroupNorm is taken away again with its channel's mean: its true
        // gradient is 0 and both sides hold float32 noise, which must not read as a 100% error (it did before the floor).
        var config = new UNetConfig { BaseChannels = 8, Groups = 8 };
        using var net = new UNet(config, 31);
        var vjp = VjpBuilder.Build(OnnxExporter.BuildForward(net), new VjpOptions { Parameters = net.ParameterInfos().Select(p => p.Name).ToList() });
        using var session = VjpSession.FromBytes(vjp.ToByteArray(), "one channel per group");
        var options = new GradientCheckOptions([1, 2], [10, 500]);
        var cases = GradientCheck.Run(net, session, "groups-8", options);
        var report = new GradientCheckReport(cases, options.ForwardTolerance, options.GradientTolerance);
        var vanishing = cases[0].Layers.Single(l => l.Parameter == "down0.conv1.bias");
        Assert.That(vanishing.MaxAbsError, Is.LessThan(1e-5));
        Assert.That(report.Passed, Is.True, string.Join("; ", cases.Select(c => $"B={c.BatchSize} worst {c.WorstParameter} {c.GradientMaxRelativeError:E2}")));
    }

    [Test]
    public void Run_GraphOfOtherWeights_Fails()
    {
        // The check must be able to fail: a graph exported from different weights is caught.
        using var net = new UNet(new UNetConfig(), 21);
        using var other = new UNet(new UNetConfig(), 22);
        var vjp = VjpBuilder.Build(OnnxExporter.BuildForward(other), new VjpOptions { Parameters = net.ParameterInfos().Select(p => p.Name).ToList() });
        using var session = VjpSession.FromBytes(vjp.ToByteArray(), "other weights");
        var options = new GradientCheckOptions([2], [100]);
        var cases = GradientCheck.Run(net, session, "mismatch", options);
        var report = new GradientCheckReport(cases, options.ForwardTolerance, options.GradientTolerance);
        Assert.That(report.Passed, Is.False);
        Assert.That(cases[0].GradientMaxRelativeError, Is.GreaterThan(1e-2));
    }
}
