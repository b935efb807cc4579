using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx.Tests;

/// <summary>Runs ONNX models in ONNX Runtime for the tests, in float32 or float64.</summary>
internal static class OrtHarness
{
    public static Dictionary<string, float[]> RunFloat(ModelProto model, IReadOnlyDictionary<string, (float[] Data, long[] Shape)> inputs, params string[] outputs)
    {
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
        using var session = new InferenceSession(model.ToByteArray(), options);
        var values = inputs.Select(kv => OrtValue.CreateTensorValueFromMemory(kv.Value.Data, kv.Value.Shape)).ToList();
        try
        {
            using var run = new RunOptions();
            using var results = session.Run(run, inputs.Keys.ToArray(), values, outputs);
            return outputs.Select((o, i) => (o, results[i].GetTensorDataAsSpan<float>().ToArray())).ToDictionary(p => p.o, p => p.Item2);
        }
        finally
        {
            values.ForEach(v => v.Dispose());
        }
    }

    public static double[] RunDouble(ModelProto model, IReadOnlyDictionary<string, (double[] Data, long[] Shape)> inputs, string output)
    {
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR };
        using var session = new InferenceSession(model.ToByteArray(), options);
        var values = inputs.Select(kv => OrtValue.CreateTensorValueFromMemory(kv.Value.Data, kv.Value.Shape)).ToList();
        try
        {
            using var run = new RunOptions();
            using var results = session.Run(run, inputs.Keys.ToArray(), values, [output]);
            return results[0].GetTensorDataAsSpan<double>().ToArray();
        }
        finally
        {
            values.ForEach(v => v.Dispose());
        }
    }

    /// <summary>The same model computing in float64: float initializers, inputs, outputs, casts and constants become double.</summary>
    public static ModelProto ToDouble(ModelProto model)
    {
        var m = model.Clone();
        var g = m.Graph;
        for (int i = 0; i < g.Initializer.Count; i++)
        {
            var t = g.Initializer[i];
            if (t.DataType == TensorData.Float)
            {
                g.Initializer[i] = ToDoubleTensor(t);
            }
        }
        foreach (var vi in g.Input.Concat(g.Output).Concat(g.ValueInfo))
        {
            if (vi.Type?.TensorType is { ElemType: TensorData.Float } tt)
            {
                tt.ElemType = TensorData.Double;
            }
        }
        foreach (var node in g.Node)
        {
            if (node.OpType is "GroupNormalization" or "LayerNormalization" && Attr.Find(node, "stash_type") is null)
            {
                node.Attribute.Add(Attr.Int("stash_type", TensorData.Float)); // turned into double just below
            }
            foreach (var a in node.Attribute)
            {
                // Casts to float and the float "stash" precision of the normalisations become double.
                if ((node.OpType == "Cast" && a.Name == "to" || a.Name == "stash_type") && a.I == TensorData.Float)
                {
                    a.I = TensorData.Double;
                }
                if (a.T is { DataType: TensorData.Float } t)
                {
                    a.T = ToDoubleTensor(t);
                }
            }
        }
        return m;
    }

    private static TensorProto ToDoubleTensor(TensorProto t)
    {
        var d = new TensorProto { Name = t.Name, DataType = TensorData.Double };
        d.Dims.AddRange(t.Dims);
        d.DoubleData.AddRange(TensorData.ToFloats(t).Select(v => (double)v));
        return d;
    }
}
