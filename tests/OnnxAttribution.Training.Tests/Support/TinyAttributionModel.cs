using OnnxAttribution.Core.Data;
using OnnxAttribution.Core.Models;
using OnnxAttribution.Onnx;

namespace OnnxAttribution.Training.Tests.Support;

/// <summary>What the attribution tests run on: a small untrained, seed-fixed U-Net and the first embedded images.</summary>
internal static class TinyAttributionModel
{
    /// <summary>Exports the U-Net (forward.onnx, model.json) with its gradient graph (vjp.onnx) into <paramref name="directory"/>.</summary>
    public static void Export(string directory)
    {
        using var net = new UNet(new UNetConfig { BaseChannels = 8, Groups = 4, TimeEmbeddingDim = 32, SinusoidDim = 16 }, seed: 3);
        var parameters = net.ParameterInfos();
        OnnxExporter.Export(net, new ScheduleSettings(ScheduleKind.Linear, 1000), null, directory, "tiny",
            (forward, dir) => OnnxModelFile.Save(ModelExport.BuildVjp(forward, parameters), Path.Combine(dir, "vjp.onnx")));
    }

    /// <summary>The first <paramref name="rows"/> images of the embedded dataset.</summary>
    public static ImageDataset EmbeddedRows(int rows) => SubsetSpec.Parse($"0:{rows}").Apply(Repository.Locator.Load("embedded"));
}
