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
    /// <param name="images">B clean images x₀, B·C·H·W values.</param>
    /// <param name="count">B.</param>
    /// <param name="outputs">The gradient-graph outputs wanted.</param>
    /// <param name="accumulate">Called once per pair, in plan order, with the outputs and the pair's weight.</param>
    /// <param name="cotangent">The cotangents fed to the graph; null for the plan's measurement.</param>
    public void ForEachPair(ReadOnlySpan<float> images, int count, IReadOnlyList<string> outputs, Action<Dictionary<string, float[]>, float> accumulate, CotangentFunction? cotangent = null)
    {
        ArgumentNullException.ThrowIfNull(accumulate);
        int d = ExampleLength;
        if (images.Length != (long)count * d)
        {
            throw new ArgumentException($"batch of {count}: images need {(long)count * d} values, got {images.Length}");
        }
        var noise = new float[d];
        var noiseBatch = new float[count * d];
        var xt = new float[count * d];
        var eps = new float[count * d];
        var cot = new float[count * d];
        var ts = new long[count];
        float weight = 1f / Plan.Pairs;
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
                    noise.CopyTo(noiseBatch.AsSpan(b * d, d));
                    var x0 = images.Slice(b * d, d);
                    var dst = xt.AsSpan(b * d, d);
                    for (int i = 0; i < d; i++)
                    {
                        dst[i] = a * x0[i] + s * noise[i];
                    }
                }
                _forward.Predict(xt, ts, count, eps);
                if (cotangent is null)
                {
                    Measurement.Cotangent(Plan.Measurement, eps, noiseBatch, d, cot);
                }
                else
                {
                    cotangent(j, draw, eps, noiseBatch, cot);
                }
                accumulate(_vjp.Run(xt, ts, cot, count, outputs), weight);
            }
        }
    }

    /// <summary>Averaged per-example gradients of a batch of clean images.</summary>
    /// <param name="images">B clean images x₀ in [-1, 1], B·C·H·W values.</param>
    /// <param name="count">B.</param>
    /// <param name="destination">B·p values, overwritten.</param>
    public void Compute(ReadOnlySpan<float> images, int count, Span<float> destination)
    {
        int d = ExampleLength;
        long p = Dimension;
        if (images.Length != (long)count * d || destination.Length != count * p)
        {
            throw new ArgumentException($"batch of {count}: images need {(long)count * d} values (got {images.Length}), destination {count * p} (got {destination.Length})");
        }
        if (p == 0)
        {
            throw new GraphContractException($"{_vjp.Label}: the gradient graph has no grad.* outputs (per-example gradients)");
        }
        // Accumulated in an array (a span cannot be captured by the per-pair callback), then copied out once.
        var dest = new float[count * p];
        ForEachPair(images, count, _vjp.GradientOutputs, (grads, weight) =>
        {
            long offset = 0;
            for (int k = 0; k < _vjp.GradientOutputs.Count; k++)
            {
                var g = grads[_vjp.GradientOutputs[k]];
                int n = checked((int)_sizes[k]);
                for (int b = 0; b < count; b++)
                {
                    var target = dest.AsSpan(checked((int)(b * p + offset)), n);
                    System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(g.AsSpan(b * n, n), weight, target, target);
                }
                offset += n;
            }
        });
        dest.CopyTo(destination);
    }
}
