using Microsoft.ML.OnnxRuntime.Tensors;
using Microsoft.ML.OnnxRuntime;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;

namespace OnnxAttribution.Runtime;

/// <summary>
/// The forward graph (<c>forward.onnx</c>) run by ONNX Runtime as an <see cref="IDenoiser"/>:
/// inputs <c>x_t</c> float [B, C, H, W] and <c>t</c> int64 [B] (and a conditional model's condition input, e.g. the label
/// <c>y</c> int64 [B]), output <c>eps</c> float [B, C, H, W].
/// </summary>
/// <remarks>
/// The contract is checked when the model is opened. <c>Predict</c> binds the caller's spans directly as
/// ONNX Runtime tensors (no copies); they only need to stay valid during the call. <c>Predict</c> may be
/// called from several threads at once (ONNX Runtime's <c>Run</c> is thread-safe). Dispose to release the native session.
/// </remarks>
public sealed class OnnxDenoiser : IDenoiser, IDisposable
{
    /// <summary>The name of the noisy-image input.</summary>
    public const string InputXt = "x_t";

    /// <summary>The name of the timestep input.</summary>
    public const string InputT = "t";

    /// <summary>The name of the predicted-noise output.</summary>
    public const string OutputEps = "eps";

    private static readonly string[] OutputNames = [OutputEps];

    private readonly InferenceSession _session;
    private readonly int _fixedBatch;
    private bool _disposed;

    /// <summary>Opens <paramref name="modelPath"/> and checks it against the forward contract.</summary>
    /// <param name="modelPath">The forward.onnx file.</param>
    /// <param name="channels">C the model must take (from model.json).</param>
    /// <param name="imageSize">H = W the model must take.</param>
    /// <param name="settings">Device and threads; null for CPU defaults.</param>
    /// <param name="condition">The condition the model takes (model.json's <c>condition</c>); null for an unconditional model.</param>
    /// <exception cref="ModelFileException">The file is missing or ONNX Runtime cannot load it.</exception>
    /// <exception cref="GraphContractException">An input or output is missing, or has another element type or shape.</exception>
    /// <exception cref="UserInputException">The device cannot be used.</exception>
    public OnnxDenoiser(string modelPath, int channels, int imageSize, SessionSettings? settings = null, ConditionSpec? condition = null)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(imageSize, 1);
        ModelPath = modelPath;
        Channels = channels;
        ImageSize = imageSize;
        Condition = condition;
        _session = OrtSessions.Open(modelPath, settings ?? SessionSettings.Default, condition);
        try
        {
            _fixedBatch = CheckContract();
        }
        catch
        {
            _session.Dispose();
            throw;
        }
    }

    /// <summary>The forward.onnx file the session was opened from.</summary>
    public string ModelPath { get; }

    /// <inheritdoc/>
    public int Channels { get; }

    /// <inheritdoc/>
    public int ImageSize { get; }

    /// <inheritdoc/>
    public ConditionSpec? Condition { get; }

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The span lengths do not match <paramref name="batch"/>, or the model needs a condition.</exception>
    /// <exception cref="AttributionException">ONNX Runtime failed; the message names the model and the input shapes.</exception>
    public void Predict(ReadOnlySpan<float> xt, ReadOnlySpan<long> t, int batch, Span<float> eps) => Predict(xt, t, [], batch, eps);

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The span lengths do not match <paramref name="batch"/>, a condition value is not one
    /// the model takes, or conditions are missing (conditional model) or given (unconditional model).</exception>
    /// <exception cref="AttributionException">ONNX Runtime failed; the message names the model and the input shapes.</exception>
    public void Predict(ReadOnlySpan<float> xt, ReadOnlySpan<long> t, ReadOnlySpan<long> conditions, int batch, Span<float> eps)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckConditions(Condition, conditions, batch, ModelPath);
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        long len = (long)batch * Channels * ImageSize * ImageSize;
        if (xt.Length != len || eps.Length != len || t.Length != batch)
        {
            throw new ArgumentException(
                $"batch {batch} of {Channels}×{ImageSize}×{ImageSize} needs x_t and eps of {len} floats and t of {batch}; got {xt.Length}, {eps.Length} and {t.Length}");
        }
        if (_fixedBatch > 0 && batch != _fixedBatch)
        {
            throw new ArgumentException($"{ModelPath}: the model's batch dimension is fixed at {_fixedBatch}; got a batch of {batch}");
        }
        long[] imageShape = [batch, Channels, ImageSize, ImageSize];
        using var xtValue = AlignedTensors.Float(xt, imageShape);
        using var tValue = AlignedTensors.Int64(t, [batch]);
        using var yValue = Condition is null ? null : AlignedTensors.Int64(conditions, [batch]);
        try
        {
            using var runOptions = new RunOptions();
            using var results = yValue is null
                ? _session.Run(runOptions, [InputXt, InputT], [xtValue, tValue], OutputNames)
                : _session.Run(runOptions, [InputXt, InputT, Condition!.Input], [xtValue, tValue, yValue], OutputNames);
            results[0].GetTensorDataAsSpan<float>().CopyTo(eps);
        }
        catch (OnnxRuntimeException e)
        {
            throw new AttributionException(
                $"{ModelPath}: ONNX Runtime failed on inputs {InputXt} [{string.Join(",", imageShape)}] float, {InputT} [{batch}] int64 ({e.Message})", e);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _session.Dispose();
        }
    }

    /// <summary>
    /// Checks one condition value per image for a conditional model (each one it accepts) and none for an unconditional one.
    /// </summary>
    /// <exception cref="ArgumentException">They do not fit; the message names <paramref name="label"/>.</exception>
    public static void CheckConditions(ConditionSpec? condition, ReadOnlySpan<long> conditions, int batch, string label)
    {
        if (condition is null)
        {
            if (!conditions.IsEmpty)
            {
                throw new ArgumentException($"{label}: the model takes no condition; got {conditions.Length} condition values");
            }
            return;
        }
        if (conditions.Length != batch)
        {
            throw new ArgumentException($"{label}: the model takes a {condition.Kind.ToString().ToLowerInvariant()} per image " +
                $"(input '{condition.Input}'); got {conditions.Length} for a batch of {batch}");
        }
        foreach (long c in conditions)
        {
            if (!condition.Accepts(c))
            {
                throw new ArgumentException($"{label}: condition value {c} is not one the model takes ({condition.DescribeValues()})");
            }
        }
    }

    /// <summary>Checks names, element types and shapes; returns the fixed batch size, or 0 when it is symbolic.</summary>
    private int CheckContract()
    {
        var inputs = _session.InputMetadata;
        var outputs = _session.OutputMetadata;
        var problems = new List<string>();
        string? conditionInput = Condition?.Input;
        foreach (var name in inputs.Keys)
        {
            if (name is not InputXt and not InputT && name != conditionInput)
            {
                problems.Add(conditionInput is null
                    ? $"unexpected input '{name}' (the forward contract has exactly '{InputXt}' and '{InputT}'; a conditional model declares its input in model.json's 'condition')"
                    : $"unexpected input '{name}' (the forward contract has '{InputXt}', '{InputT}' and the condition '{conditionInput}')");
            }
        }
        int batch = 0;
        long[] image = [-1, Channels, ImageSize, ImageSize];
        CheckTensor(inputs, InputXt, "input", TensorElementType.Float, image, problems, ref batch);
        CheckTensor(inputs, InputT, "input", TensorElementType.Int64, [-1], problems, ref batch);
        if (conditionInput is not null)
        {
            CheckTensor(inputs, conditionInput, "input", TensorElementType.Int64, [-1], problems, ref batch);
        }
        CheckTensor(outputs, OutputEps, "output", TensorElementType.Float, image, problems, ref batch);
        if (problems.Count > 0)
        {
            throw new GraphContractException($"{ModelPath}: does not meet the forward contract " +
                $"({InputXt} float [B,{Channels},{ImageSize},{ImageSize}], {InputT} int64 [B] → {OutputEps} float [B,{Channels},{ImageSize},{ImageSize}]): " +
                string.Join("; ", problems));
        }
        return batch;
    }

    private static void CheckTensor(IReadOnlyDictionary<string, NodeMetadata> values, string name, string kind, TensorElementType type,
        long[] expected, List<string> problems, ref int batch)
    {
        if (!values.TryGetValue(name, out var meta))
        {
            problems.Add($"missing {kind} '{name}' (found: {string.Join(", ", values.Keys)})");
            return;
        }
        if (!meta.IsTensor || meta.ElementDataType != type)
        {
            problems.Add($"{kind} '{name}' is {(meta.IsTensor ? meta.ElementDataType.ToString() : meta.OnnxValueType.ToString())}, expected {type}");
        }
        var dims = meta.Dimensions;
        string shown = "[" + string.Join(",", dims.Select(d => d < 0 ? "?" : d.ToString(System.Globalization.CultureInfo.InvariantCulture))) + "]";
        if (dims.Length != expected.Length)
        {
            problems.Add($"{kind} '{name}' has shape {shown}, expected rank {expected.Length}");
            return;
        }
        for (int i = 0; i < dims.Length; i++)
        {
            if (i == 0)
            {
                if (dims[0] > 0)
                {
                    if (batch > 0 && batch != dims[0])
                    {
                        problems.Add($"{kind} '{name}' has batch {dims[0]} but another value has batch {batch}");
                    }
                    batch = dims[0];
                }
            }
            else if (dims[i] > 0 && dims[i] != expected[i])
            {
                problems.Add($"{kind} '{name}' has shape {shown}, expected dimension {i} = {expected[i]}");
            }
        }
    }
}
