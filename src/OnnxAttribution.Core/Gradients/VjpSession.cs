using Microsoft.ML.OnnxRuntime;
using OnnxAttribution.Core.Runtime;

namespace OnnxAttribution.Core.Gradients;

/// <summary>
/// An ONNX Runtime session on a gradient graph (<c>vjp.onnx</c>, DESIGN.md's contract): inputs <c>x_t</c>, <c>t</c>,
/// <c>cotangent</c>; outputs <c>eps</c>, then <c>grad.&lt;param&gt;</c> [B, d0, rest] and/or <c>a.&lt;layer&gt;</c>/<c>g.&lt;layer&gt;</c>.
/// </summary>
public sealed class VjpSession : IDisposable
{
    public const string InputXt = "x_t";
    public const string InputT = "t";
    public const string InputCotangent = "cotangent";
    public const string OutputEps = "eps";

    private readonly InferenceSession _session;

    private VjpSession(InferenceSession session, string label)
    {
        _session = session;
        Label = label;
        var inputs = session.InputMetadata;
        foreach (var name in new[] { InputXt, InputT, InputCotangent })
        {
            if (!inputs.ContainsKey(name))
            {
                session.Dispose();
                throw new GraphContractException($"{label}: the gradient graph has no input '{name}' (inputs: {string.Join(", ", inputs.Keys)}); expected x_t, t, cotangent");
            }
        }
        var dims = inputs[InputXt].Dimensions;
        if (dims.Length != 4 || dims[1] <= 0 || dims[2] <= 0 || dims[2] != dims[3])
        {
            session.Dispose();
            throw new GraphContractException($"{label}: input 'x_t' has shape [{string.Join(",", dims)}]; expected [batch, C, H, H]");
        }
        Channels = dims[1];
        ImageSize = dims[2];
        var outputs = session.OutputNames;
        if (outputs.Count == 0 || outputs[0] != OutputEps)
        {
            session.Dispose();
            throw new GraphContractException($"{label}: the first output must be 'eps' (outputs: {string.Join(", ", outputs)})");
        }
        GradientOutputs = outputs.Where(o => o.StartsWith("grad.", StringComparison.Ordinal)).ToArray();
        FactorOutputs = outputs.Where(o => o.StartsWith("a.", StringComparison.Ordinal) || o.StartsWith("g.", StringComparison.Ordinal)).ToArray();
        OutputShapes = outputs.ToDictionary(o => o, o => session.OutputMetadata[o].Dimensions.Select(d => (long)d).ToArray());
    }

    /// <summary>Opens <c>vjp.onnx</c> from a file.</summary>
    /// <exception cref="ModelFileException">The file is missing or cannot be loaded.</exception>
    /// <exception cref="GraphContractException">The graph does not follow the gradient-graph contract.</exception>
    public static VjpSession Open(string path, SessionSettings? settings = null) =>
        new(OrtSessions.Open(path, settings ?? SessionSettings.Default), path);

    /// <summary>Opens a gradient graph held in memory (e.g. just built for a freshly initialised model).</summary>
    public static VjpSession FromBytes(byte[] model, string label, SessionSettings? settings = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var options = OrtSessions.CreateOptions(settings ?? SessionSettings.Default);
        try
        {
            return new VjpSession(new InferenceSession(model, options), label);
        }
        catch (OnnxRuntimeException e)
        {
            throw new ModelFileException($"{label}: ONNX Runtime cannot load the gradient graph ({e.Message})", e);
        }
    }

    public string Label { get; }

    public int Channels { get; }

    public int ImageSize { get; }

    /// <summary>The per-example gradient outputs, in the graph's order (the model's parameter order).</summary>
    public IReadOnlyList<string> GradientOutputs { get; }

    /// <summary>The Kronecker-factor outputs <c>a.*</c> and <c>g.*</c>.</summary>
    public IReadOnlyList<string> FactorOutputs { get; }

    /// <summary>Declared output shapes (−1 for the batch).</summary>
    public IReadOnlyDictionary<string, long[]> OutputShapes { get; }

    /// <summary>Runs the graph on a batch and returns copies of the requested outputs (all when null).</summary>
    /// <exception cref="ArgumentException">The spans do not match the batch size and the model's geometry.</exception>
    /// <exception cref="AttributionException">ONNX Runtime failed; the message names the model and inputs.</exception>
    public Dictionary<string, float[]> Run(ReadOnlySpan<float> xt, ReadOnlySpan<long> t, ReadOnlySpan<float> cotangent, int batch, IReadOnlyList<string>? outputs = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        long per = (long)Channels * ImageSize * ImageSize;
        if (xt.Length != batch * per || cotangent.Length != batch * per || t.Length != batch)
        {
            throw new ArgumentException($"{Label}: batch {batch} needs x_t and cotangent of {batch * per} values and t of {batch}; got {xt.Length}, {cotangent.Length}, {t.Length}");
        }
        outputs ??= _session.OutputNames;
        long[] imageShape = [batch, Channels, ImageSize, ImageSize];
        using var xv = AlignedTensors.Float(xt, imageShape);
        using var tv = AlignedTensors.Int64(t, [batch]);
        using var cv = AlignedTensors.Float(cotangent, imageShape);
        try
        {
            using var run = new RunOptions();
            using var results = _session.Run(run, [InputXt, InputT, InputCotangent], [xv, tv, cv], outputs);
            var dict = new Dictionary<string, float[]>(outputs.Count, StringComparer.Ordinal);
            for (int i = 0; i < outputs.Count; i++)
            {
                dict[outputs[i]] = results[i].GetTensorDataAsSpan<float>().ToArray();
            }
            return dict;
        }
        catch (OnnxRuntimeException e)
        {
            throw new AttributionException($"{Label}: ONNX Runtime failed on inputs x_t [{string.Join(",", imageShape)}], t [{batch}], cotangent: {e.Message}", e);
        }
    }

    public void Dispose() => _session.Dispose();
}
