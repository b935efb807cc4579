using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Onnx;

namespace OnnxAttribution.Training.Tests.Support;

/// <summary>What the attribution tests run on: a small untrained, seed-fixed U-Net and the first embedded images.</summary>
internal static class TinyAttributionModel
{
    /// <summary>The U-Net's architecture.</summary>
    public static readonly UNetConfig Config = new() { BaseChannels = 8, Groups = 4, TimeEmbeddingDim = 32, SinusoidDim = 16 };

    /// <summary>
    /// Exports the U-Net (forward.onnx, model.json, with <paramref name="training"/> recorded) with its gradient graph
    /// (vjp.onnx) into <paramref name="directory"/>.
    /// </summary>
    public static void Export(string directory, TrainingInfo? training = null)
    {
        using var net = new UNet(Config, seed: 3);
        var parameters = net.ParameterInfos();
        OnnxExporter.Export(net, new ScheduleSettings(ScheduleKind.Linear, 1000), training, directory, "tiny",
            (forward, dir) => OnnxModelFile.Save(ModelExport.BuildVjp(forward, parameters), Path.Combine(dir, "vjp.onnx")));
    }

    /// <summary>The first <paramref name="rows"/> images of the embedded dataset.</summary>
    public static ImageDataset EmbeddedRows(int rows) => SubsetSpec.Parse($"0:{rows}").Apply(Repository.Locator.Load("embedded"));
}
