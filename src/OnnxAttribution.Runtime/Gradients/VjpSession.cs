using Microsoft.ML.OnnxRuntime;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;

namespace OnnxAttribution.Runtime.Gradients;

/// <summary>
/// An ONNX Runtime session on a gradient graph (<c>vjp.onnx</c>, docs/design.md's contract): inputs <c>x_t</c>, <c>t</c>,
/// <c>cotangent</c>; outputs <c>eps</c>, then <c>grad.&lt;param&gt;</c> [B, d0, rest] and/or <c>a.&lt;layer&gt;</c>/<c>g.&lt;layer&gt;</c>
/// and/or the in-graph factored projection <c>projected_factors</c> [B, k].
/// </summary>
public sealed class VjpSession : IDisposable
{
    /// <summary>The name of the noisy-image input, float [B, C, H, W].</summary>
    public const string InputXt = "x_t";
    /// <summary>The name of the timestep input, int64 [B].</summary>
    public const string InputT = "t";
    /// <summary>The name of the cotangent input, float [B, C, H, W], of a graph that takes its cotangent explicitly.</summary>
    public const string InputCotangent = "cotangent";
    /// <summary>The name of the first output, the predicted noise ε̂, float [B, C, H, W].</summary>
    public const string OutputEps = "eps";
    /// <summary>The name of the target input, float [B, C, H, W], of a graph that computes its cotangent (<see cref="CotangentFromOutput"/>).</summary>
    public const string InputTarget = "target";
    /// <summary>The name of the input w₀, w₁, w₂, float [3], of a graph that computes its cotangent (<see cref="CotangentFromOutput"/>).</summary>
    public const string InputCotangentWeights = "cotangent_weights";

    private readonly InferenceSession _session;

    private VjpSession(InferenceSession session, string label, ConditionSpec? condition)
    {
        _session = session;
        Label = label;
        Condition = condition;
        var inputs = session.InputMetadata;
        if (condition is not null && (!inputs.TryGetValue(condition.Input, out var y) || y.ElementDataType != Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Int64))
        {
            session.Dispose();
            throw new GraphContractException($"{label}: the gradient graph has no int64 input '{condition.Input}' for the model's " +
                $"{condition.Kind.ToString().ToLowerInvariant()} condition (inputs: {string.Join(", ", inputs.Keys)})");
        }
        CotangentFromOutput = !inputs.ContainsKey(InputCotangent) && inputs.ContainsKey(InputTarget) && inputs.ContainsKey(InputCotangentWeights);
        foreach (var name in CotangentFromOutput ? new[] { InputXt, InputT, InputTarget, InputCotangentWeights } : [InputXt, InputT, InputCotangent])
        {
            if (!inputs.ContainsKey(name))
            {
                session.Dispose();
                throw new GraphContractException($"{label}: the gradient graph has no input '{name}' (inputs: {string.Join(", ", inputs.Keys)}); " +
                    "expected x_t, t, cotangent (or target and cotangent_weights)");
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
        ProjectedFactorsOutput = outputs.Contains(Onnx.Differentiation.VjpBuilder.ProjectedFactorsOutput) ? Onnx.Differentiation.VjpBuilder.ProjectedFactorsOutput : null;
        OutputShapes = outputs.ToDictionary(o => o, o => session.OutputMetadata[o].Dimensions.Select(d => (long)d).ToArray());
    }

    /// <summary>Opens <c>vjp.onnx</c> from a file.</summary>
    /// <param name="path">The file.</param>
    /// <param name="settings">Device and threads; null for CPU defaults.</param>
    /// <param name="condition">The model's condition (model.json's <c>condition</c>); null for an unconditional model.</param>
    /// <exception cref="ModelFileException">The file is missing or cannot be loaded.</exception>
    /// <exception cref="GraphContractException">The graph does not follow the gradient-graph contract.</exception>
    public static VjpSession Open(string path, SessionSettings? settings = null, ConditionSpec? condition = null) =>
        new(OrtSessions.Open(path, settings ?? SessionSettings.Default), path, condition);

    /// <summary>Opens a gradient graph held in memory (e.g. just built for a freshly initialised model).</summary>
    public static VjpSession FromBytes(byte[] model, string label, SessionSettings? settings = null, ConditionSpec? condition = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var options = OrtSessions.CreateOptions(settings ?? SessionSettings.Default);
        try
        {
            return new VjpSession(new InferenceSession(model, options), label, condition);
        }
        catch (OnnxRuntimeException e)
        {
            throw new ModelFileException($"{label}: ONNX Runtime cannot load the gradient graph ({e.Message})", e);
        }
    }

    /// <summary>The graph's file path, or the label given to <see cref="FromBytes"/>; names the graph in messages.</summary>
    public string Label { get; }

    /// <summary>The model's condition, bound to its input in every run; null for an unconditional model.</summary>
    public ConditionSpec? Condition { get; }

    /// <summary>C of the images the graph takes (from the shape of <c>x_t</c>).</summary>
    public int Channels { get; }

    /// <summary>H = W of the images the graph takes (from the shape of <c>x_t</c>).</summary>
    public int ImageSize { get; }

    /// <summary>The per-example gradient outputs, in the graph's order (the model's parameter order).</summary>
    public IReadOnlyList<string> GradientOutputs { get; }

    /// <summary>The Kronecker-factor outputs <c>a.*</c> and <c>g.*</c>.</summary>
    public IReadOnlyList<string> FactorOutputs { get; }

    /// <summary>The output holding the factored projection computed in the graph ([B, k]), or null when the graph has none.</summary>
    public string? ProjectedFactorsOutput { get; }

    /// <summary>Declared output shapes (−1 for the batch).</summary>
    public IReadOnlyDictionary<string, long[]> OutputShapes { get; }

    /// <summary>
    /// Whether the graph computes its cotangent from its own output (inputs <c>target</c> and <c>cotangent_weights</c>:
    /// cotangent = w₀·ε̂ + w₁·target + w₂) instead of taking it as the <c>cotangent</c> input.
    /// </summary>
    public bool CotangentFromOutput { get; }

    /// <summary>Runs the graph on a batch with an explicit cotangent and returns copies of the requested outputs (all when null).</summary>
    /// <exception cref="ArgumentException">The spans do not match the batch size and the model's geometry.</exception>
    /// <exception cref="AttributionException">ONNX Runtime failed; the message names the model and inputs.</exception>
    /// <param name="xt">B·C·H·W inputs.</param>
    /// <param name="t">B timesteps.</param>
    /// <param name="cotangent">B·C·H·W cotangents.</param>
    /// <param name="batch">B.</param>
    /// <param name="outputs">The outputs wanted (all when null).</param>
    /// <param name="conditions">B condition values for a conditional model; empty for an unconditional one.</param>
    public Dictionary<string, float[]> Run(ReadOnlySpan<float> xt, ReadOnlySpan<long> t, ReadOnlySpan<float> cotangent, int batch, IReadOnlyList<string>? outputs = null,
        ReadOnlySpan<long> conditions = default) =>
        CotangentFromOutput
            ? RunCore(xt, t, conditions, cotangent, [0f, 1f, 0f], batch, outputs)
            : RunCore(xt, t, conditions, cotangent, default, batch, outputs);

    /// <summary>
    /// Runs a graph that computes its cotangent (<see cref="CotangentFromOutput"/>): cotangent = w₀·ε̂ + w₁·target + w₂ from the
    /// ε̂ of the same run, so a measurement needs no separate forward pass.
    /// </summary>
    /// <param name="xt">B·C·H·W inputs.</param>
    /// <param name="t">B timesteps.</param>
    /// <param name="target">B·C·H·W values (the noise, for the diffusion loss).</param>
    /// <param name="weights">w₀, w₁, w₂.</param>
    /// <param name="batch">B.</param>
    /// <param name="outputs">The outputs wanted (all when null).</param>
    /// <param name="conditions">B condition values for a conditional model; empty for an unconditional one.</param>
    /// <exception cref="GraphContractException">The graph takes an explicit cotangent.</exception>
    public Dictionary<string, float[]> RunMeasured(ReadOnlySpan<float> xt, ReadOnlySpan<long> t, ReadOnlySpan<float> target, ReadOnlySpan<float> weights,
        int batch, IReadOnlyList<string>? outputs = null, ReadOnlySpan<long> conditions = default)
    {
        if (!CotangentFromOutput)
        {
            throw new GraphContractException($"{Label}: the gradient graph takes an explicit cotangent, not target and cotangent_weights");
        }
        if (weights.Length != 3)
        {
            throw new ArgumentException($"{Label}: cotangent_weights needs 3 values, got {weights.Length}", nameof(weights));
        }
        return RunCore(xt, t, conditions, target, weights, batch, outputs);
    }

    /// <summary>
    /// As <see cref="RunMeasured"/>, but <paramref name="read"/> reads the outputs where ONNX Runtime left them (in
    /// <paramref name="outputs"/>' order, valid only during the call) instead of receiving copies.
    /// </summary>
    public void RunMeasuredInPlace(ReadOnlySpan<float> xt, ReadOnlySpan<long> t, ReadOnlySpan<long> conditions, ReadOnlySpan<float> target,
        ReadOnlySpan<float> weights, int batch, IReadOnlyList<string> outputs, Action<IReadOnlyList<OrtValue>> read)
    {
        if (!CotangentFromOutput || weights.Length != 3)
        {
            throw new GraphContractException($"{Label}: the gradient graph must take target and cotangent_weights, with 3 weights (got {weights.Length})");
        }
        RunCore(xt, t, conditions, target, weights, batch, outputs, read);
    }

    /// <summary>One run: <paramref name="image"/> is the cotangent, or the target when <paramref name="weights"/> is not empty.</summary>
    private Dictionary<string, float[]> RunCore(ReadOnlySpan<float> xt, ReadOnlySpan<long> t, ReadOnlySpan<long> conditions, ReadOnlySpan<float> image,
        ReadOnlySpan<float> weights, int batch, IReadOnlyList<string>? outputs)
    {
        outputs ??= _session.OutputNames;
        var dict = new Dictionary<string, float[]>(outputs.Count, StringComparer.Ordinal);
        RunCore(xt, t, conditions, image, weights, batch, outputs, results =>
        {
            for (int i = 0; i < outputs.Count; i++)
            {
                dict[outputs[i]] = results[i].GetTensorDataAsSpan<float>().ToArray();
            }
        });
        return dict;
    }

    private void RunCore(ReadOnlySpan<float> xt, ReadOnlySpan<long> t, ReadOnlySpan<long> conditions, ReadOnlySpan<float> image, ReadOnlySpan<float> weights,
        int batch, IReadOnlyList<string> outputs, Action<IReadOnlyList<OrtValue>> read)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        OnnxDenoiser.CheckConditions(Condition, conditions, batch, Label);
        long per = (long)Channels * ImageSize * ImageSize;
        string imageInput = weights.IsEmpty ? InputCotangent : InputTarget;
        if (xt.Length != batch * per || image.Length != batch * per || t.Length != batch)
        {
            throw new ArgumentException($"{Label}: batch {batch} needs x_t and {imageInput} of {batch * per} values and t of {batch}; got {xt.Length}, {image.Length}, {t.Length}");
        }
        long[] imageShape = [batch, Channels, ImageSize, ImageSize];
        using var xv = AlignedTensors.Float(xt, imageShape);
        using var tv = AlignedTensors.Int64(t, [batch]);
        using var cv = AlignedTensors.Float(image, imageShape);
        using var wv = weights.IsEmpty ? null : AlignedTensors.Float(weights, [3]);
        using var yv = Condition is null ? null : AlignedTensors.Int64(conditions, [batch]);
        List<string> names = wv is null ? [InputXt, InputT, InputCotangent] : [InputXt, InputT, InputTarget, InputCotangentWeights];
        List<OrtValue> values = wv is null ? [xv, tv, cv] : [xv, tv, cv, wv];
        if (yv is not null)
        {
            names.Add(Condition!.Input);
            values.Add(yv);
        }
        try
        {
            using var run = new RunOptions();
            using var results = _session.Run(run, names, values, outputs);
            read(results);
        }
        catch (OnnxRuntimeException e)
        {
            throw new AttributionException($"{Label}: ONNX Runtime failed on inputs x_t [{string.Join(",", imageShape)}], t [{batch}], {imageInput}: {e.Message}", e);
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _session.Dispose();
}
