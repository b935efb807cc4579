using OnnxAttribution.Core;
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
}
