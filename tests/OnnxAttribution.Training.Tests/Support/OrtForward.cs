using Microsoft.ML.OnnxRuntime;

namespace OnnxAttribution.Training.Tests.Support;

/// <summary>Runs an exported forward graph in ONNX Runtime.</summary>
internal static class OrtForward
{
    public static float[] Run(string forwardPath, float[] xt, long[] t, int channels, int size)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1 };
        using var session = new InferenceSession(forwardPath, options);
        using var x = OrtValue.CreateTensorValueFromMemory(xt, [t.Length, channels, size, size]);
        using var tv = OrtValue.CreateTensorValueFromMemory(t, [t.Length]);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, [OnnxExporter.InputImage, OnnxExporter.InputTimestep], [x, tv], [OnnxExporter.OutputNoise]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }
}
