using OnnxAttribution.Core.Gradients;
using OnnxAttribution.Core.Models;
using OnnxAttribution.Core.Runtime;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// Per-example gradients of a measurement, averaged over a plan's (timestep, noise) pairs: for each pair,
/// x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε, ε̂ from forward.onnx, the measurement's cotangent, then vjp.onnx.
/// </summary>
/// <remarks>
/// Averaging before projection follows D-TRAK's code. The gradient of one example is the concatenation of the
/// graph's <c>grad.*</c> outputs in their order (the model's parameter order).
/// </remarks>
public sealed class GradientSource
{
    private readonly IDenoiser _forward;
    private readonly VjpSession _vjp;
    private readonly NoiseSchedule _schedule;
    private readonly long[] _sizes;

    public GradientSource(IDenoiser forward, VjpSession vjp, NoiseSchedule schedule, FeaturizationPlan plan)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(vjp);
        ArgumentNullException.ThrowIfNull(schedule);
        ArgumentNullException.ThrowIfNull(plan);
        plan.Validate(schedule);
        if (forward.Channels != vjp.Channels || forward.ImageSize != vjp.ImageSize)
        {
            throw new GraphContractException($"{vjp.Label}: image geometry {vjp.Channels}×{vjp.ImageSize}² differs from the forward graph's {forward.Channels}×{forward.ImageSize}²");
        }
        if (vjp.GradientOutputs.Count == 0 && vjp.FactorOutputs.Count == 0)
        {
            throw new GraphContractException($"{vjp.Label}: the gradient graph has neither grad.* nor a.*/g.* outputs");
        }
        _forward = forward;
        _vjp = vjp;
        _schedule = schedule;
        Plan = plan;
        _sizes = vjp.GradientOutputs.Select(o => vjp.OutputShapes[o].Skip(1).Aggregate(1L, (a, b) => a * b)).ToArray();
        Dimension = _sizes.Sum();
    }

    public FeaturizationPlan Plan { get; }

    /// <summary>The length p of one example's gradient (the number of differentiated parameters).</summary>
    public long Dimension { get; }

    /// <summary>The gradient graph's grad.* outputs in parameter order: one example's gradient is their concatenation.</summary>
    public IReadOnlyList<string> GradientOutputs => _vjp.GradientOutputs;

    /// <summary>C·H·W of one example.</summary>
    public int ExampleLength => _vjp.Channels * _vjp.ImageSize * _vjp.ImageSize;

    /// <summary>The Kronecker-factor outputs of the gradient graph, as (layer, a output, g output, S, in, out).</summary>
    public IReadOnlyList<(string Layer, string A, string G, int Positions, int InDim, int OutDim)> Factors() =>
        _vjp.FactorOutputs.Where(o => o.StartsWith("a.", StringComparison.Ordinal)).Select(a =>
        {
            string layer = a[2..];
            var sa = _vjp.OutputShapes[a];
            var sg = _vjp.OutputShapes["g." + layer];
            return (layer, a, "g." + layer, checked((int)sa[1]), checked((int)sa[2]), checked((int)sg[2]));
        }).ToList();

    /// <summary>
    /// Runs every (timestep, draw) pair of the plan on a batch and hands the requested gradient-graph outputs of each pair
    /// to <paramref name="accumulate"/> with the pair's weight 1/pairs.
    /// </summary>
    public void ForEachPair(ReadOnlySpan<float> images, int count, IReadOnlyList<string> outputs, Action<Dictionary<string, float[]>, float> accumulate)
    {
        ArgumentNullException.ThrowIfNull(accumulate);
        ForEachPair(images, count, outputs, pair => accumulate(pair.Outputs, pair.Weight));
    }

    /// <summary>
    /// Runs every (timestep, draw) pair of the plan on a batch and hands each pair's forward pass (ε, ε̂) and the requested
    /// gradient-graph outputs to <paramref name="handle"/>. With no outputs requested only the forward graph runs.
    /// </summary>
    /// <param name="images">B clean images x₀ in [-1, 1], B·C·H·W values.</param>
    /// <param name="count">B.</param>
    /// <param name="outputs">Gradient-graph outputs wanted (e.g. grad.* or a.*/g.*); empty for the forward pass alone.</param>
    /// <param name="handle">Called once per pair, in plan order; the <see cref="PairBatch"/> is reused, valid only during the call.</param>
    public void ForEachPair(ReadOnlySpan<float> images, int count, IReadOnlyList<string> outputs, Action<PairBatch> handle)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(handle);
        int d = ExampleLength;
        if (images.Length != (long)count * d)
        {
            throw new ArgumentException($"batch of {count}: images need {(long)count * d} values, got {images.Length}");
        }
        var noise = new float[d];
        var pair = new PairBatch(count, d, 1f / Plan.Pairs);
        var xt = new float[count * d];
        var cot = new float[count * d];
        var ts = new long[count];
        for (int j = 0; j < Plan.Timesteps.Count; j++)
        {
            long t = Plan.Timesteps[j];
            float a = (float)Math.Sqrt(_schedule.AlphaBars[t]);
            float s = (float)Math.Sqrt(1 - _schedule.AlphaBars[t]);
            Array.Fill(ts, t);
            for (int draw = 0; draw < Plan.NoiseDraws; draw++)
            {
                Plan.Noise(j, draw, noise);
                for (int b = 0; b < count; b++)
                {
                    noise.CopyTo(pair.NoiseArray.AsSpan(b * d, d));
                    var x0 = images.Slice(b * d, d);
                    var dst = xt.AsSpan(b * d, d);
                    for (int i = 0; i < d; i++)
                    {
                        dst[i] = a * x0[i] + s * noise[i];
                    }
                }
                _forward.Predict(xt, ts, count, pair.PredictionArray);
                pair.Timestep = t;
                pair.TimestepIndex = j;
                pair.Draw = draw;
                if (outputs.Count > 0)
                {
                    Measurement.Cotangent(Plan.Measurement, pair.PredictionArray, pair.NoiseArray, d, cot);
                    pair.Outputs = _vjp.Run(xt, ts, cot, count, outputs);
                }
                handle(pair);
            }
        }
    }

    /// <summary>Averaged per-example gradients of a batch of clean images.</summary>
    /// <param name="images">B clean images x₀ in [-1, 1], B·C·H·W values.</param>
    /// <param name="count">B.</param>
    /// <param name="destination">B·p values, overwritten.</param>
    /// <param name="losses">Empty, or B values: each example's diffusion loss ‖ε − ε̂‖²/D averaged over the plan's pairs
    /// (from the same forward passes as the gradients, so free).</param>
    /// <remarks>
    /// With <see cref="FeaturizationPlan.NormalizePairs"/> each pair's gradient g is added as g/‖g‖ (the norm over all p
    /// parameters; a zero gradient adds nothing); otherwise as g, bit for bit as before the option existed.
    /// </remarks>
    public void Compute(ReadOnlySpan<float> images, int count, Span<float> destination, Span<float> losses = default)
    {
        int d = ExampleLength;
        long p = Dimension;
        if (images.Length != (long)count * d || destination.Length != count * p || (losses.Length != 0 && losses.Length != count))
        {
            throw new ArgumentException($"batch of {count}: images need {(long)count * d} values (got {images.Length}), destination {count * p} (got {destination.Length}), losses 0 or {count} (got {losses.Length})");
        }
        if (p == 0)
        {
            throw new GraphContractException($"{_vjp.Label}: the gradient graph has no grad.* outputs (per-example gradients)");
        }
        // Accumulated in arrays (a span cannot be captured by the per-pair callback), then copied out once.
        var dest = new float[count * p];
        var loss = new double[count];
        bool wantLosses = losses.Length > 0;
        var scale = new float[count];
        ForEachPair(images, count, _vjp.GradientOutputs, pair =>
        {
            for (int b = 0; b < count; b++)
            {
                loss[b] += wantLosses ? pair.Weight * pair.Loss(b) : 0;
                scale[b] = Plan.NormalizePairs ? UnitScale(pair.Outputs, b, pair.Weight) : pair.Weight;
            }
            long offset = 0;
            for (int k = 0; k < _vjp.GradientOutputs.Count; k++)
            {
                var g = pair.Outputs[_vjp.GradientOutputs[k]];
                int n = checked((int)_sizes[k]);
                for (int b = 0; b < count; b++)
                {
                    var target = dest.AsSpan(checked((int)(b * p + offset)), n);
                    System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(g.AsSpan(b * n, n), scale[b], target, target);
                }
                offset += n;
            }
        });
        dest.CopyTo(destination);
        for (int b = 0; b < losses.Length; b++)
        {
            losses[b] = (float)loss[b];
        }
    }

    /// <summary>weight / ‖g_b‖ for example <paramref name="b"/>'s gradient over every grad.* output (each output's sum of
    /// squares in float32, their total in float64); 0 for a zero gradient.</summary>
    private float UnitScale(Dictionary<string, float[]> grads, int b, float weight)
    {
        double squares = 0;
        for (int k = 0; k < _vjp.GradientOutputs.Count; k++)
        {
            int n = checked((int)_sizes[k]);
            squares += System.Numerics.Tensors.TensorPrimitives.SumOfSquares(grads[_vjp.GradientOutputs[k]].AsSpan(b * n, n));
        }
        return squares > 0 ? (float)(weight / Math.Sqrt(squares)) : 0f;
    }
}

/// <summary>
/// One (timestep, draw) pair of a batch as <see cref="GradientSource.ForEachPair(ReadOnlySpan{float}, int, IReadOnlyList{string}, Action{PairBatch})"/>
/// hands it out: the noise ε, the forward output ε̂ and the gradient-graph outputs asked for.
/// </summary>
/// <remarks>One instance is refilled for every pair: its arrays and values are valid only during the callback.</remarks>
public sealed class PairBatch
{
    private readonly int _exampleLength;

    internal PairBatch(int count, int exampleLength, float weight)
    {
        Count = count;
        _exampleLength = exampleLength;
        Weight = weight;
        NoiseArray = new float[count * exampleLength];
        PredictionArray = new float[count * exampleLength];
    }

    /// <summary>B, the examples of the batch.</summary>
    public int Count { get; }

    /// <summary>The pair's weight in the plan's average, 1/pairs.</summary>
    public float Weight { get; }

    /// <summary>The diffusion timestep t.</summary>
    public long Timestep { get; internal set; }

    /// <summary>The index of t in the plan's timesteps.</summary>
    public int TimestepIndex { get; internal set; }

    /// <summary>The noise draw at this timestep.</summary>
    public int Draw { get; internal set; }

    /// <summary>The gradient-graph outputs asked for, each B·(per-example size) values; empty when none were asked for.</summary>
    public Dictionary<string, float[]> Outputs { get; internal set; } = [];

    /// <summary>The noise ε that made x_t, B·D values (the same ε for every example of the pair).</summary>
    public ReadOnlySpan<float> Noise => NoiseArray;

    /// <summary>The forward output ε̂(x_t, t), B·D values.</summary>
    public ReadOnlySpan<float> Prediction => PredictionArray;

    internal float[] NoiseArray { get; }

    internal float[] PredictionArray { get; }

    /// <summary>The diffusion loss ‖ε − ε̂‖²/D of example <paramref name="example"/> at this pair, in float64.</summary>
    public double Loss(int example)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(example);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(example, Count);
        return Measurement.Loss(Prediction.Slice(example * _exampleLength, _exampleLength), Noise.Slice(example * _exampleLength, _exampleLength));
    }
}
