using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using OnnxAttribution.Onnx.Proto;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Store;

namespace OnnxAttribution.Runtime.Gradients;

/// <summary>
/// Runs a <see cref="ReducedGradientGraph"/> through IOBinding: the dense projection's blocks of P are made once (copied to
/// GPU memory on CUDA) and bound to every run with one example's image and its pairs, and only the k features, the n losses and the
/// gradient's norm are bound to host memory. Every intermediate — x_t, the per-pair gradients, their sum — stays with the
/// execution provider.
/// </summary>
public sealed class ReducedGradientSession : IDisposable
{
    /// <summary>The most bytes the dense projection's P may take (p·k float32 values).</summary>
    public const long ProjectionLimitBytes = 32L << 30;

    private readonly InferenceSession _session;
    private readonly List<(string Name, OrtValue Value)> _projection = [];
    private readonly OrtMemoryInfo _host = OrtMemoryInfo.DefaultInstance;
    private readonly int _channels;
    private readonly int _size;
    private readonly Models.ConditionSpec? _condition;

    private ReducedGradientSession(InferenceSession session, int dim, VjpSession vjp, bool dense, string label)
    {
        _session = session;
        Dim = dim;
        Dense = dense;
        Label = label;
        _channels = vjp.Channels;
        _size = vjp.ImageSize;
        _condition = vjp.Condition;
    }

    /// <summary>k: the features one run returns.</summary>
    public int Dim { get; }

    /// <summary>Whether the graph projects dense gradients (and returns their norm); factored otherwise.</summary>
    public bool Dense { get; }

    /// <summary>Names the graph in messages.</summary>
    public string Label { get; }

    /// <summary>Opens the reduced graph of <paramref name="gradientGraph"/> on the device of <paramref name="settings"/>.</summary>
    /// <param name="gradientGraph">A gradient graph that computes its cotangent from its own ε̂.</param>
    /// <param name="vjp">The same graph opened as a session: its output names and shapes.</param>
    /// <param name="dense">For dense features the projection (P's rows are generated and bound as inputs); null for factored features.</param>
    /// <param name="factoredDim">k of the graph's projected_factors (factored features).</param>
    /// <param name="settings">Device and threads.</param>
    /// <exception cref="SettingException">P is larger than <see cref="ProjectionLimitBytes"/>, or ONNX Runtime cannot run the graph.</exception>
    public static ReducedGradientSession Open(ModelProto gradientGraph, VjpSession vjp, ProjectionSettings? dense, int factoredDim, SessionSettings settings)
    {
        ArgumentNullException.ThrowIfNull(gradientGraph);
        ArgumentNullException.ThrowIfNull(vjp);
        ArgumentNullException.ThrowIfNull(settings);
        var blocks = dense is null ? null : vjp.GradientOutputs.Select(o => (o, vjp.OutputShapes[o].Skip(1).Aggregate(1L, (a, b) => a * b))).ToList();
        int dim = dense?.Dim ?? factoredDim;
        long p = blocks?.Sum(b => b.Item2) ?? 0;
        if (p * dim * 4L > ProjectionLimitBytes)
        {
            throw new SettingException("Reduction", GradientReduction.Device,
                $"the dense projection's P ({p} × {dim} float32, {p * dim * 4L >> 20} MiB) is larger than the " +
                $"{ProjectionLimitBytes >> 30} GiB the graph may hold", GradientReduction.Host);
        }
        var graph = ReducedGradientGraph.Wrap(gradientGraph, blocks, dense is null ? vjp.ProjectedFactorsOutput : null, dim);
        string label = $"{vjp.Label} (reduced in the graph)";
        using var options = OrtSessions.CreateOptions(settings);
        ReducedGradientSession? reduced = null;
        try
        {
            reduced = new ReducedGradientSession(new InferenceSession(graph.ToByteArray(), options), dim, vjp, dense is not null, label);
            if (dense is not null)
            {
                reduced.BindProjection(dense.DenseProjector(p), blocks!, settings, options);
            }
            return reduced;
        }
        catch (OnnxRuntimeException e)
        {
            reduced?.Dispose();
            throw new SettingException("Reduction", GradientReduction.Device,
                $"ONNX Runtime could not set up {label} on {settings.Device} ({e.Message})", GradientReduction.Host, e);
        }
        catch
        {
            reduced?.Dispose();
            throw;
        }
    }

    /// <summary>P's rows for each gradient output, generated once and bound for every run (copied to the GPU on CUDA).</summary>
    private void BindProjection(DenseProjector dense, List<(string Output, long Size)> blocks, SessionSettings settings, SessionOptions options)
    {
        bool cuda = settings.Device == ExecutionDevice.Cuda;
        using var device = cuda ? OrtStoreScan.DeviceMemory(settings) : null;
        using var copier = cuda ? new InferenceSession(OrtStoreScan.CopyGraph(StoreDType.Float32, Dim).ToByteArray(), options) : null;
        long offset = 0;
        foreach (var (output, size) in blocks)
        {
            var rows = new float[checked(size * Dim)];
            long first = offset;
            Parallel.For(0, size, r => dense.FillRow(first + r, rows.AsSpan(checked((int)(r * Dim)), Dim)));
            var host = OrtValue.CreateTensorValueFromMemory(rows, [size, Dim]);
            _projection.Add((ReducedGradientGraph.ProjectionPrefix + output, cuda ? OrtStoreScan.CopyTo(copier!, device!, host) : host));
            offset += size;
        }
    }

    /// <summary>
    /// One run: the features of <paramref name="run"/>'s pairs of the clean image <paramref name="x0"/> are added to
    /// <paramref name="features"/>, each pair's loss times its weight to <paramref name="loss"/>.
    /// </summary>
    /// <param name="x0">C·H·W values.</param>
    /// <param name="run">The pairs.</param>
    /// <param name="cotangentWeights">The measurement's w₀, w₁, w₂.</param>
    /// <param name="conditions">The example's condition value once per pair for a conditional model; empty otherwise.</param>
    /// <param name="features">k values, accumulated into.</param>
    /// <param name="loss">Accumulated into.</param>
    /// <returns>‖Σᵢ wᵢ gᵢ‖ over this run's pairs (dense), or 0.</returns>
    /// <exception cref="AttributionException">ONNX Runtime failed.</exception>
    public float Run(ReadOnlySpan<float> x0, PairRun run, ReadOnlySpan<long> conditions, float[] cotangentWeights, Span<float> features, ref double loss)
    {
        ArgumentNullException.ThrowIfNull(run);
        int length = _channels * _size * _size;
        int n = run.Count;
        if (x0.Length != length || features.Length != Dim || run.Noise.Length != n * length)
        {
            throw new ArgumentException($"{Label}: x0 needs {length} values, the noise of {n} pairs {n * length} and features {Dim}; " +
                $"got {x0.Length}, {run.Noise.Length} and {features.Length}");
        }
        long[] image = [1, _channels, _size, _size];
        long[] pairs = [n, _channels, _size, _size];
        // A binding per run (cheap: it holds references), so streams may share the session.
        using var binding = _session.CreateIoBinding();
        using var xv = OrtValue.CreateTensorValueFromMemory(x0.ToArray(), image);
        using var nv = OrtValue.CreateTensorValueFromMemory(run.Noise, pairs);
        using var tv = OrtValue.CreateTensorValueFromMemory(run.Timesteps, [n]);
        using var sv = OrtValue.CreateTensorValueFromMemory(run.SignalScales, [n, 1, 1, 1]);
        using var qv = OrtValue.CreateTensorValueFromMemory(run.NoiseScales, [n, 1, 1, 1]);
        using var wv = OrtValue.CreateTensorValueFromMemory(run.Weights, [1, n]);
        using var cv = OrtValue.CreateTensorValueFromMemory(cotangentWeights, [3]);
        OnnxDenoiser.CheckConditions(_condition, conditions, n, Label);
        using var yv = _condition is null ? null : OrtValue.CreateTensorValueFromMemory(conditions.ToArray(), [n]);
        if (yv is not null)
        {
            binding.BindInput(_condition!.Input, yv);
        }
        binding.BindInput(ReducedGradientGraph.CleanInput, xv);
        binding.BindInput(ReducedGradientGraph.NoiseInput, nv);
        binding.BindInput(VjpSession.InputT, tv);
        binding.BindInput(ReducedGradientGraph.SignalScaleInput, sv);
        binding.BindInput(ReducedGradientGraph.NoiseScaleInput, qv);
        binding.BindInput(ReducedGradientGraph.WeightsInput, wv);
        binding.BindInput(VjpSession.InputCotangentWeights, cv);
        foreach (var (name, value) in _projection)
        {
            binding.BindInput(name, value);
        }
        binding.BindOutputToDevice(ReducedGradientGraph.FeaturesOutput, _host);
        binding.BindOutputToDevice(ReducedGradientGraph.LossesOutput, _host);
        if (Dense)
        {
            binding.BindOutputToDevice(ReducedGradientGraph.NormOutput, _host);
        }
        try
        {
            using var runOptions = new RunOptions();
            _session.RunWithBinding(runOptions, binding);
        }
        catch (OnnxRuntimeException e)
        {
            throw new AttributionException($"{Label}: ONNX Runtime failed on one image and {n} pairs: {e.Message}", e);
        }
        using var outputs = binding.GetOutputValues();
        System.Numerics.Tensors.TensorPrimitives.Add(features, outputs[0].GetTensorDataAsSpan<float>(), features);
        var losses = outputs[1].GetTensorDataAsSpan<float>();
        for (int i = 0; i < n; i++)
        {
            loss += run.Weights[i] * (double)losses[i];
        }
        return Dense ? outputs[2].GetTensorDataAsSpan<float>()[0] : 0f;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var (_, value) in _projection)
        {
            value.Dispose();
        }
        _projection.Clear();
        _session.Dispose();
    }
}
