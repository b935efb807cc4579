using OnnxAttribution.Onnx;

namespace OnnxAttribution.TestSupport;

/// <summary>Tiny forward graphs built with <see cref="GraphBuilder"/>: eps = scale·x_t + timeScale·t (t broadcast over C, H, W;
/// by default 0.5·x_t + 0.01·t).</summary>
public static class TinyModels
{
    public static string WriteForward(string path, int channels, int size,
        string xtName = "x_t", string tName = "t", string epsName = "eps", int tType = TensorData.Int64, int outSize = -1,
        float scale = 0.5f, float timeScale = 0.01f)
    {
        var g = new GraphBuilder("tiny_forward");
        var xt = g.Input(xtName, TensorData.Float, -1, channels, size, size);
        var t = g.Input(tName, tType, -1);
        var tf = g.Node("Cast", [t], attributes: Attr.Int("to", TensorData.Float));
        var shape = g.ConstantInt64("shape", -1, 1, 1, 1);
        var tr = g.Node("Reshape", [tf, shape]);
        var tScaled = g.Node("Mul", [tr, g.Scalar("c001", timeScale)]);
        var xScaled = g.Node("Mul", [xt, g.Scalar("half", scale)]);
        g.Node("Add", [xScaled, tScaled], epsName);
        int o = outSize < 0 ? size : outSize;
        g.Output(epsName, TensorData.Float, -1, channels, o, o);
        OnnxModelFile.Save(g.Build(), path);
        return path;
    }
}
