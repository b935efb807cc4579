using OnnxAttribution.Core.Models;
using OnnxAttribution.Onnx;

namespace OnnxAttribution.Training.Tests.Support;

/// <summary>The small untrained U-Net the attribution tests share (seed-fixed; planted duplicates need no training).</summary>
internal static class TinyModel
{
    /// <summary>Exports forward.onnx, vjp.onnx and model.json of the tiny U-Net into <paramref name="directory"/>.</summary>
    public static string Export(string directory)
    {
        using var net = new UNet(new UNetConfig { BaseChannels = 8, Groups = 4, TimeEmbeddingDim = 32, SinusoidDim = 16 }, seed: 3);
        var parameters = net.ParameterInfos();
        OnnxExporter.Export(net, new ScheduleSettings(ScheduleKind.Linear, 1000), null, directory, "tiny",
            (forward, dir) => OnnxModelFile.Save(ModelExport.BuildVjp(forward, parameters), Path.Combine(dir, "vjp.onnx")));
        return directory;
    }
}
