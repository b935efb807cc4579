using OnnxAttribution.Primitives;
using TorchSharp;

namespace OnnxAttribution.Training.Tests;

public sealed class UNetTests
{
    [Test]
    public void Constructor_DefaultConfig_HasExpectedSizeAndNames()
    {
        using var net = new UNet(new UNetConfig(), seed: 1);
        var names = net.ParameterInfos().Select(p => p.Name).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(net.ParameterCount, Is.InRange(250_000, 500_000));
            Assert.That(names[0], Is.EqualTo("time.fc1.weight"));
            Assert.That(names, Does.Contain("down0.conv1.weight"));
            Assert.That(names, Does.Contain("down1.skip.weight"));
            Assert.That(names, Does.Contain("up0.norm1.bias"));
            Assert.That(names[^1], Is.EqualTo("conv_out.bias"));
        });
    }

    [Test]
    public void Forward_Batch_ReturnsImageShape()
    {
        using var scope = torch.NewDisposeScope();
        using var net = new UNet(new UNetConfig(), seed: 1);
        var y = net.forward(torch.randn(3, 1, 16, 16), torch.tensor(new long[] { 0, 500, 999 }));
        Assert.That(y.shape, Is.EqualTo(new long[] { 3, 1, 16, 16 }));
    }

    [Test]
    public void ForwardBackward_WhileGarbageIsCollected_Survives()
    {
        // TorchSharp passes the implicit Scalar alpha of a + b to libtorch by handle; if .NET finalizes it during the call,
        // libtorch reads freed memory (seen as "Expected false to be true" from Scalar::toFloat in add). Collections run
        // on another thread the whole time here; the U-Net passes KeptScalars.One. (The loss avoids a - b and square(), which make
        // implicit Scalars inside TorchSharp.)
        using var net = new UNet(new UNetConfig(), seed: 1);
        using var stop = new CancellationTokenSource();
        var collector = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        });
        try
        {
            for (int i = 0; i < 300; i++)
            {
                using var scope = torch.NewDisposeScope();
                net.zero_grad();
                var x = torch.randn(1, 1, 16, 16);
                var y = net.forward(x, torch.tensor(new long[] { i % 1000 }));
                var loss = (y * y).mean();
                loss.backward();
                Assert.That(float.IsFinite(loss.item<float>()), $"step {i}");
            }
        }
        finally
        {
            stop.Cancel();
            collector.Wait();
        }
    }

    [Test]
    public void Constructor_SameSeed_GivesIdenticalWeights()
    {
        using var a = new UNet(new UNetConfig(), seed: 7);
        using var b = new UNet(new UNetConfig(), seed: 7);
        var wa = a.GetWeights();
        var wb = b.GetWeights();
        Assert.That(wb.Keys, Is.EqualTo(wa.Keys));
        foreach (var (name, values) in wa)
        {
            Assert.That(wb[name], Is.EqualTo(values).AsCollection, name);
        }
    }

    [Test]
    public void Validate_ChannelsNotDivisibleByGroups_Throws()
    {
        var config = new UNetConfig { BaseChannels = 20, Groups = 8 };
        Assert.That(config.Validate, Throws.TypeOf<UserInputException>().With.Message.Contains("groups"));
    }

    [Test]
    public void LoadWeights_MissingParameter_ThrowsNamingIt()
    {
        using var net = new UNet(new UNetConfig(), seed: 1);
        var weights = net.GetWeights();
        weights.Remove("mid.conv2.bias");
        Assert.That(() => net.LoadWeights(weights, "test"), Throws.TypeOf<ModelFileException>().With.Message.Contains("mid.conv2.bias"));
    }

    /// <summary>Leaves freed memory in libtorch's allocator holding NaN, as a long training run does by chance.</summary>
    private static void FillFreedMemoryWithNaN()
    {
        for (int j = 1; j < 40; j++)
        {
            using var poison = torch.full([j * 997], float.NaN);
        }
    }

    [TestCase(8)]
    [TestCase(24)]
    public void ForwardBackward_ChannelsNotMultiplesOf16_StayFiniteOverNaNFilledMemory(int baseChannels)
    {
        // libtorch's conv2d reads uninitialised memory at such channel counts (UNet.Conv); before it went around them, most
        // of these passes returned NaN outputs or gradients.
        using var net = new UNet(new UNetConfig { BaseChannels = baseChannels, Groups = 4 }, seed: 2);
        for (int i = 0; i < 5; i++)
        {
            using var scope = torch.NewDisposeScope();
            FillFreedMemoryWithNaN();
            var x = torch.randn(8, 1, 16, 16).requires_grad_(true);
            var y = net.forward(x, torch.arange(8, dtype: torch.int64) * 100);
            Assert.That(torch.isfinite(y).all().item<bool>(), $"pass {i}: output");
            net.zero_grad();
            y.square().sum().backward();
            Assert.That(torch.isfinite(x.grad!).all().item<bool>(), $"pass {i}: input gradient");
            foreach (var (name, p) in net.named_parameters())
            {
                Assert.That(torch.isfinite(p.grad!).all().item<bool>(), $"pass {i}: gradient of {name}");
            }
        }
    }

    [TestCase(1, 24, 1, 3)]
    [TestCase(24, 12, 2, 3)]
    [TestCase(40, 8, 1, 1)]
    [TestCase(32, 32, 2, 3)]
    public void Conv_AnyChannels_MatchesTheModulesForward(int inChannels, int outChannels, int stride, int kernel)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(4);
        using var conv = torch.nn.Conv2d(inChannels, outChannels, kernel, stride: stride, padding: kernel / 2);
        var x = torch.randn(3, inChannels, 16, 16);
        // The reference in float64, which libtorch computes without the float32 kernels that UNet.Conv avoids.
        var expected = torch.nn.functional.conv2d(x.to(torch.float64), conv.weight!.to(torch.float64), conv.bias!.to(torch.float64),
            strides: [stride, stride], padding: [kernel / 2, kernel / 2]).to(torch.float32);
        var actual = UNet.Conv(conv, x);
        Assert.That(actual.shape, Is.EqualTo(expected.shape));
        Assert.That((actual - expected).abs().max().item<float>(), Is.LessThan(1e-5f));
    }
}
