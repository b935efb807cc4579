using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Training.Tests.Support;

namespace OnnxAttribution.Training.Tests;

public sealed class OnnxExportTests : TempDirectoryTest
{
    private static readonly string[] AllowedOps =
        ["Conv", "Gemm", "Sigmoid", "Mul", "Add", "Sub", "Div", "Sqrt", "Sin", "Cos", "Cast", "Unsqueeze", "Concat", "Reshape", "ReduceMean", "Resize"];

    private static readonly ScheduleSettings Schedule = new(ScheduleKind.Linear, 1000);

    [TestCase(1)]
    [TestCase(8)]
    public void Export_FreshUNet_OnnxRuntimeMatchesTorch(int batch)
    {
        using var net = new UNet(new UNetConfig(), seed: 3);
        // Move the GroupNorm scales and shifts off 1 and 0 so a mix-up of the two would show.
        var weights = net.GetWeights();
        var noise = TestData.Normal(weights.Values.Sum(v => v.Length), seed: 11);
        int k = 0;
        foreach (var (name, values) in weights.Where(w => w.Key.Contains("norm")))
        {
            for (int i = 0; i < values.Length; i++)
            {
                values[i] += 0.3f * noise[k++];
            }
        }
        net.LoadWeights(weights, "perturbed");
        var exported = OnnxExporter.Export(net, Schedule, null, TempDir);
        AssertForwardAgrees(net, exported.ForwardPath, batch, seed: batch);
    }

    [TestCase(1)]
    [TestCase(8)]
    public void Export_ShippedModel_OnnxRuntimeMatchesTorch(int batch)
    {
        var dir = Path.Combine(TestData.RepositoryRoot(), "models", "fm16");
        Assert.That(File.Exists(Path.Combine(dir, "model.json")), Is.True, $"the shipped model is part of the repository: {dir} is missing");
        using var net = UNet.FromModelDirectory(dir);
        AssertForwardAgrees(net, Path.Combine(dir, "forward.onnx"), batch, seed: 100 + batch);
    }

    [Test]
    public void Export_Graph_UsesOnlyAgreedOpsAndContract()
    {
        using var net = new UNet(new UNetConfig(), seed: 3);
        var model = OnnxExporter.Export(net, Schedule, null, TempDir).Forward;
        var graph = model.Graph;
        Assert.Multiple(() =>
        {
            Assert.That(graph.Node.Select(n => n.OpType).Distinct(), Is.SubsetOf(AllowedOps));
            Assert.That(model.IrVersion, Is.EqualTo(10));
            Assert.That(model.OpsetImport.Single().Version, Is.EqualTo(18));
            Assert.That(graph.Input.Select(i => i.Name), Is.EqualTo(new[] { "x_t", "t" }));
            Assert.That(graph.Output.Single().Name, Is.EqualTo("eps"));
            Assert.That(graph.Input[0].Type.TensorType.Shape.Dim[0].DimParam, Is.EqualTo("batch"));
            Assert.That(graph.Initializer.Select(i => i.Name), Is.SupersetOf(net.ParameterInfos().Select(p => p.Name)));
            var gamma = graph.Initializer.Single(i => i.Name == "down0.norm1.weight");
            Assert.That(gamma.Dims, Is.EqualTo(new long[] { 32, 1, 1 }));
        });
    }

    [Test]
    public void Export_ModelJson_ListsTorchNamesAndShapesAndRebuilds()
    {
        var config = new UNetConfig();
        using var net = new UNet(config, seed: 5);
        var info = new TrainingInfo("bars", "all", 1, 2, 1e-3, 0.999, 5, 0.5, 1.0);
        OnnxExporter.Export(net, Schedule, info, TempDir, name: "test-unet");
        var meta = ModelMetadata.Load(TempDir);
        Assert.Multiple(() =>
        {
            Assert.That(meta.Name, Is.EqualTo("test-unet"));
            Assert.That(meta.ImageSize, Is.EqualTo(16));
            Assert.That(meta.Schedule, Is.EqualTo(Schedule));
            Assert.That(meta.Training, Is.EqualTo(info));
            Assert.That(meta.Parameters.Select(p => p.Name), Is.EqualTo(net.ParameterInfos().Select(p => p.Name)));
            Assert.That(meta.Parameters.Single(p => p.Name == "down0.norm1.weight").Shape, Is.EqualTo(new long[] { 32 }));
            var back = UNetConfig.FromJson(meta.Architecture, "model.json");
            Assert.That(back with { ChannelMultipliers = config.ChannelMultipliers }, Is.EqualTo(config));
            Assert.That(back.ChannelMultipliers, Is.EqualTo(config.ChannelMultipliers));
        });
    }

    [Test]
    public void Read_ExportedWeights_RoundTripExactly()
    {
        using var net = new UNet(new UNetConfig(), seed: 9);
        OnnxExporter.Export(net, Schedule, null, TempDir);
        var meta = ModelMetadata.Load(TempDir);
        var read = OnnxWeights.Read(Path.Combine(TempDir, "forward.onnx"), meta.Parameters);
        var original = net.GetWeights();
        Assert.That(read.Keys, Is.EquivalentTo(original.Keys));
        foreach (var (name, values) in original)
        {
            Assert.That(read[name], Is.EqualTo(values).AsCollection, name);
        }
        using var rebuilt = UNet.FromModelDirectory(TempDir);
        foreach (var (name, values) in rebuilt.GetWeights())
        {
            Assert.That(values, Is.EqualTo(original[name]).AsCollection, name);
        }
    }

    private static void AssertForwardAgrees(UNet net, string forwardPath, int batch, int seed)
    {
        var c = net.Config;
        var xt = TestData.Normal(batch * c.Channels * c.ImageSize * c.ImageSize, seed);
        long[][] timesteps =
        [
            Enumerable.Repeat(0L, batch).ToArray(),
            Enumerable.Repeat(999L, batch).ToArray(),
            Enumerable.Range(0, batch).Select(i => (long)(37 + 123 * i) % 1000).ToArray(),
        ];
        foreach (var t in timesteps)
        {
            var torchEps = TorchForward.Run(net, xt, t);
            var ortEps = OrtForward.Run(forwardPath, xt, t, c.Channels, c.ImageSize);
            Assert.That(TorchForward.MaxAbsDifference(torchEps, ortEps), Is.LessThanOrEqualTo(1e-5f), $"t = [{string.Join(",", t)}]");
        }
    }
}
