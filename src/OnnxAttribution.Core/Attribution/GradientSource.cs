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
    public void ForEachPair(ReadOnlySpan<float> images, int count, IReadOnlyList<string> outputs, Action<Dictionary<string, float[]>, float> accumulate)
    {
        ArgumentNullException.ThrowIfNull(accumulate);
        int d = ExampleLength;
        CheckBatch(images, count, nameof(images));
        var noise = new float[d];
        var noiseBatch = new float[count * d];
        var xt = new float[count * d];
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
                accumulate(RunPair(xt, ts, noiseBatch, count, outputs), weight);
            }
        }
    }

    /// <summary>
    /// The plan's pairs for a batch of clean images x₀ (B·C·H·W values in [-1, 1]): x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε for
    /// every (timestep, draw) of the plan, each weighted 1/pairs.
    /// </summary>
    public ExampleBatch Clean(ReadOnlySpan<float> images, int count)
    {
        CheckBatch(images, count, nameof(images));
        var x0 = images.ToArray();
        return new ExampleBatch(count, (outputs, accumulate) => ForEachPair(x0, count, outputs, accumulate));
    }

    /// <summary>
    /// One explicit pair with weight 1: the model inputs x_t at <paramref name="timestep"/> as given (not made from a clean
    /// image and the plan's noise), and the noise the measurement compares the prediction with (ε in ‖ε − ε̂‖²/D).
    /// Used where the noisy state comes from elsewhere, e.g. a sampling trajectory (Journey-TRAK, Georgiev et al. 2023).
    /// </summary>
    /// <param name="noisy">B states x_t, B·C·H·W values.</param>
    /// <param name="targetNoise">B target noises, B·C·H·W values (unused by <see cref="MeasurementKind.Square"/>).</param>
    /// <param name="timestep">t, 0..T−1.</param>
    /// <param name="count">B.</param>
    public ExampleBatch Noisy(ReadOnlySpan<float> noisy, ReadOnlySpan<float> targetNoise, long timestep, int count)
    {
        CheckBatch(noisy, count, nameof(noisy));
        CheckBatch(targetNoise, count, nameof(targetNoise));
        ArgumentOutOfRangeException.ThrowIfNegative(timestep);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(timestep, _schedule.Timesteps);
        var xt = noisy.ToArray();
        var eps = targetNoise.ToArray();
        var ts = new long[count];
        Array.Fill(ts, timestep);
        return new ExampleBatch(count, (outputs, accumulate) => accumulate(RunPair(xt, ts, eps, count, outputs), 1f));
    }

    /// <summary>ε̂ from forward.onnx, the measurement's cotangent, then the requested outputs of vjp.onnx.</summary>
    private Dictionary<string, float[]> RunPair(float[] xt, long[] ts, float[] noise, int count, IReadOnlyList<string> outputs)
    {
        var eps = new float[xt.Length];
        var cot = new float[xt.Length];
        _forward.Predict(xt, ts, count, eps);
        Measurement.Cotangent(Plan.Measurement, eps, noise, ExampleLength, cot);
        return _vjp.Run(xt, ts, cot, count, outputs);
    }

    private void CheckBatch(ReadOnlySpan<float> values, int count, string name)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (values.Length != (long)count * ExampleLength)
        {
            throw new ArgumentException($"batch of {count}: {name} need {(long)count * ExampleLength} values, got {values.Length}", name);
        }
    }

    /// <summary>Averaged per-example gradients of a batch of clean images.</summary>
    /// <param name="images">B clean images x₀ in [-1, 1], B·C·H·W values.</param>
    /// <param name="count">B.</param>
    /// <param name="destination">B·p values, overwritten.</param>
    public void Compute(ReadOnlySpan<float> images, int count, Span<float> destination) => Compute(Clean(images, count), destination);

    /// <summary>Per-example gradients of a batch of pairs, weighted as the batch says.</summary>
    /// <param name="batch">From <see cref="Clean"/> or <see cref="Noisy"/>.</param>
    /// <param name="destination">B·p values, overwritten.</param>
    public void Compute(ExampleBatch batch, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(batch);
        int count = batch.Count;
        long p = Dimension;
        if (destination.Length != count * p)
        {
            throw new ArgumentException($"batch of {count}: destination needs {count * p} values, got {destination.Length}", nameof(destination));
        }
        if (p == 0)
        {
            throw new GraphContractException($"{_vjp.Label}: the gradient graph has no grad.* outputs (per-example gradients)");
        }
        // Accumulated in an array (a span cannot be captured by the per-pair callback), then copied out once.
        var dest = new float[count * p];
        batch.Run(_vjp.GradientOutputs, (grads, weight) =>
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

/// <summary>
/// A batch of examples with the (x_t, target noise, t) pairs the gradient graph runs on and their weights, from
/// <see cref="GradientSource.Clean"/> (the plan's pairs of clean images) or <see cref="GradientSource.Noisy"/> (one given pair).
/// </summary>
public sealed class ExampleBatch
{
    private readonly Action<IReadOnlyList<string>, Action<Dictionary<string, float[]>, float>> _run;

    internal ExampleBatch(int count, Action<IReadOnlyList<string>, Action<Dictionary<string, float[]>, float>> run)
    {
        Count = count;
        _run = run;
    }

    /// <summary>B, the number of examples.</summary>
    public int Count { get; }

    /// <summary>Runs each pair and hands the requested gradient-graph outputs (B rows each) and the pair's weight to <paramref name="accumulate"/>.</summary>
    public void Run(IReadOnlyList<string> outputs, Action<Dictionary<string, float[]>, float> accumulate)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(accumulate);
        _run(outputs, accumulate);
    }
}
