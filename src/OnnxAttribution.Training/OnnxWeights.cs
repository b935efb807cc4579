using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Onnx;
using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Training;

/// <summary>Reads the trained parameters back out of an exported forward graph.</summary>
public static class OnnxWeights
{
    /// <summary>
    /// The float initializers of <paramref name="forwardPath"/> that are model parameters, by name, each as row-major
    /// values of its torch shape (GroupNorm scales and shifts, stored as [C,1,1] in the graph, come back as their [C] values).
    /// </summary>
    /// <param name="forwardPath">The forward graph (<c>forward.onnx</c>).</param>
    /// <param name="parameters">The parameter list of <c>model.json</c>; every one must be an initializer with as many values.</param>
    /// <exception cref="ModelFileException">The file is unreadable, or a listed parameter is missing or of the wrong size.</exception>
    public static Dictionary<string, float[]> Read(string forwardPath, IReadOnlyList<ParameterInfo> parameters)
    {
        ArgumentNullException.ThrowIfNull(forwardPath);
        ArgumentNullException.ThrowIfNull(parameters);
        ModelProto model;
        try
        {
            model = OnnxModelFile.Load(forwardPath);
        }
        catch (Exception e) when (e is OnnxGraphException or FileNotFoundException)
        {
            throw new ModelFileException($"{forwardPath}: cannot read the forward graph ({e.Message})", e);
        }
        var byName = new Dictionary<string, TensorProto>(StringComparer.Ordinal);
        foreach (var init in model.Graph.Initializer)
        {
            byName[init.Name] = init;
        }
        var result = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var p in parameters)
        {
            if (!byName.TryGetValue(p.Name, out var tensor))
            {
                throw new ModelFileException($"{forwardPath}: parameter '{p.Name}' listed in model.json has no initializer in the graph");
            }
            float[] values;
            try
            {
                values = TensorData.ToFloats(tensor);
            }
            catch (OnnxGraphException e)
            {
                throw new ModelFileException($"{forwardPath}: {e.Message}", e);
            }
            long expected = TensorData.ElementCount(p.Shape);
            if (values.LongLength != expected)
            {
                throw new ModelFileException($"{forwardPath}: initializer '{p.Name}' holds {values.LongLength} values; model.json gives shape [{string.Join(",", p.Shape)}] ({expected} values)");
            }
            result[p.Name] = values;
        }
        return result;
    }
}
