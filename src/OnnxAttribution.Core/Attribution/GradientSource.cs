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
        if (vjp.GradientOutputs.Count == 0 && vjp.FactorOutputs.Count == 0 && vjp.ProjectedFactorsOutput is null)
        {
            throw new GraphContractException($"{vjp.Label}: the gradient graph has none of grad.*, a.*/g.* or projected_factors outputs");
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

    /// <summary>The gradient graph's output holding its own factored projection, [B, k], or null (see <c>VjpOptions.FactorProjections</c>).</summary>
    public string? ProjectedFactorsOutput => _vjp.ProjectedFactorsOutput;

    /// <summary>Whether the gradient graph computes the measurement's cotangent from its own ε̂ (one run per pair, no forward pass first).</summary>
    public bool CotangentFromOutput => _vjp.CotangentFromOutput;

    /// <summary>The width k of <see cref="ProjectedFactorsOutput"/>; 0 when the graph has none.</summary>
    public int ProjectedFactorsWidth => _vjp.ProjectedFactorsOutput is { } o ? checked((int)_vjp.OutputShapes[o][1]) : 0;

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
    /// <param name="images">B clean images, B·C·H·W values.</param>
    /// <param name="count">B.</param>
    /// <param name="outputs">The gradient-graph outputs wanted.</param>
    /// <param name="accumulate">Receives each pair's outputs and its weight.</param>
    /// <param name="rows">The images' dataset rows: needed by a one-random-timestep plan (the draws are keyed by row), ignored otherwise.</param>
    /// <param name="cotangent">The cotangents fed to the graph; null for the plan's measurement.</param>
    public void ForEachPair(ReadOnlySpan<float> images, int count, IReadOnlyList<string> outputs, Action<Dictionary<string, float[]>, float> accumulate,
        ReadOnlySpan<long> rows = default, CotangentFunction? cotangent = null)
    {
        ArgumentNullException.ThrowIfNull(accumulate);
        ForEachPair(images, count, outputs, rows, pair => accumulate(pair.Outputs, pair.Weight), cotangent);
    }

    /// <summary>
    /// Runs every (timestep, draw) pair of the plan on a batch and hands each pair's forward pass (ε, ε̂) and the requested
    /// gradient-graph outputs to <paramref name="handle"/>. With no outputs requested only the forward graph runs.
    /// </summary>
    /// <param name="images">B clean images x₀ in [-1, 1], B·C·H·W values.</param>
    /// <param name="count">B.</param>
    /// <param name="outputs">Gradient-graph outputs wanted (e.g. grad.* or a.*/g.*); empty for the forward pass alone.</param>
    /// <param name="rows">The images' dataset rows: a one-random-timestep plan (TracIn) draws each example's timestep and noise
    /// from its row and runs a single pair; ignored by fixed plans.</param>
    /// <param name="handle">Called once per pair, in plan order; the <see cref="PairBatch"/> is reused, valid only during the call.</param>
    /// <param name="cotangent">The cotangents fed to the graph (e.g. Monte-Carlo Fisher samples for K-FAC); null for the plan's measurement.</param>
    public void ForEachPair(ReadOnlySpan<float> images, int count, IReadOnlyList<string> outputs, ReadOnlySpan<long> rows, Action<PairBatch> handle,
        CotangentFunction? cotangent = null)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(handle);
        int d = ExampleLength;
        CheckBatch(images, count, nameof(images));
        var noise = new float[d];
        var pair = new PairBatch(count, d, 1f / Plan.Pairs);
        var xt = new float[count * d];
        var cot = new float[count * d];
        var ts = new long[count];
        if (Plan.RandomTimestepRound is not null)
        {
            if (rows.Length != count)
            {
                throw new ArgumentException($"the plan draws one timestep per example from its dataset row: pass the {count} rows (got {rows.Length})", nameof(rows));
            }
            for (int b = 0; b < count; b++)
            {
                ts[b] = Plan.ExampleTimestep(rows[b], _schedule.Timesteps);
                Plan.ExampleNoise(rows[b], pair.NoiseArray.AsSpan(b * d, d));
            }
            RunPair(images, count, ts, xt, cot, outputs, pair, timestepIndex: 0, draw: 0, cotangent);
            handle(pair);
            return;
        }
        for (int j = 0; j < Plan.Timesteps.Count; j++)
        {
            Array.Fill(ts, Plan.Timesteps[j]);
            for (int draw = 0; draw < Plan.NoiseDraws; draw++)
            {
                Plan.Noise(j, draw, noise);
                for (int b = 0; b < count; b++)
                {
                    noise.CopyTo(pair.NoiseArray.AsSpan(b * d, d));
                }
                RunPair(images, count, ts, xt, cot, outputs, pair, j, draw, cotangent);
                handle(pair);
            }
        }
    }

    /// <summary>One pair on a batch: x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε per example (ε in the pair), ε̂, the cotangent, the gradient graph.</summary>
    private void RunPair(ReadOnlySpan<float> images, int count, long[] ts, float[] xt, float[] cot, IReadOnlyList<string> outputs, PairBatch pair,
        int timestepIndex, int draw, CotangentFunction? cotangent)
    {
        int d = ExampleLength;
        for (int b = 0; b < count; b++)
        {
            float a = (float)Math.Sqrt(_schedule.AlphaBars[ts[b]]);
            float s = (float)Math.Sqrt(1 - _schedule.AlphaBars[ts[b]]);
            var x0 = images.Slice(b * d, d);
            var e = pair.NoiseArray.AsSpan(b * d, d);
            var dst = xt.AsSpan(b * d, d);
            for (int i = 0; i < d; i++)
            {
                dst[i] = a * x0[i] + s * e[i];
            }
        }
        if (outputs.Count > 0 && cotangent is null && _vjp.CotangentFromOutput)
        {
            var result = RunMeasurement(xt, ts, pair.NoiseArray, count, outputs);
            result[VjpSession.OutputEps].CopyTo(pair.PredictionArray, 0);
            pair.Outputs = result;
            return;
        }
        _forward.Predict(xt, ts, count, pair.PredictionArray);
        if (outputs.Count > 0)
        {
            if (cotangent is null)
            {
                Measurement.Cotangent(Plan.Measurement, pair.PredictionArray, pair.NoiseArray, d, cot);
            }
            else
            {
                cotangent(timestepIndex, draw, pair.PredictionArray, pair.NoiseArray, cot);
            }
            pair.Outputs = _vjp.Run(xt, ts, cot, count, outputs);
        }
    }

    /// <summary>
    /// One run of a graph that computes the plan measurement's cotangent from its own ε̂ (instead of a forward pass, then the
    /// graph): the requested outputs and <c>eps</c>.
    /// </summary>
    private Dictionary<string, float[]> RunMeasurement(float[] xt, long[] ts, ReadOnlySpan<float> noise, int count, IReadOnlyList<string> outputs)
    {
        var wanted = outputs.Contains(VjpSession.OutputEps) ? outputs : [VjpSession.OutputEps, .. outputs];
        return _vjp.RunMeasured(xt, ts, noise, Measurement.CotangentWeights(Plan.Measurement, ExampleLength), count, wanted);
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
    /// <param name="rows">The images' dataset rows (a one-random-timestep plan needs them).</param>
    public void Compute(ReadOnlySpan<float> images, int count, Span<float> destination, Span<float> losses = default, ReadOnlySpan<long> rows = default)
    {
        CheckBatch(images, count, nameof(images));
        long p = RequireGradients(count, destination.Length);
        if (losses.Length != 0 && losses.Length != count)
        {
            throw new ArgumentException($"batch of {count}: losses need 0 or {count} values, got {losses.Length}", nameof(losses));
        }
        // Accumulated in arrays (a span cannot be captured by the per-pair callback), then copied out once.
        var dest = new float[count * p];
        var loss = new double[count];
        bool wantLosses = losses.Length > 0;
        var scale = new float[count];
        ForEachPair(images, count, _vjp.GradientOutputs, rows, pair =>
        {
            for (int b = 0; b < count; b++)
            {
                loss[b] += wantLosses ? pair.Weight * pair.Loss(b) : 0;
                scale[b] = Plan.NormalizePairs ? UnitScale(pair.Outputs, b, pair.Weight) : pair.Weight;
            }
            AddScaled(pair.Outputs, count, scale, dest);
        });
        dest.CopyTo(destination);
        for (int b = 0; b < losses.Length; b++)
        {
            losses[b] = (float)loss[b];
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
        return new ExampleBatch(count, (outputs, accumulate) =>
        {
            if (_vjp.CotangentFromOutput)
            {
                accumulate(RunMeasurement(xt, ts, eps, count, outputs), 1f);
                return;
            }
            var prediction = new float[xt.Length];
            var cot = new float[xt.Length];
            _forward.Predict(xt, ts, count, prediction);
            Measurement.Cotangent(Plan.Measurement, prediction, eps, ExampleLength, cot);
            accumulate(_vjp.Run(xt, ts, cot, count, outputs), 1f);
        });
    }

    /// <summary>Per-example gradients of a batch of pairs, weighted as the batch says.</summary>
    /// <param name="batch">From <see cref="Clean"/> or <see cref="Noisy"/>.</param>
    /// <param name="destination">B·p values, overwritten.</param>
    public void Compute(ExampleBatch batch, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(batch);
        int count = batch.Count;
        long p = RequireGradients(count, destination.Length);
        var dest = new float[count * p];
        var scale = new float[count];
        batch.Run(_vjp.GradientOutputs, (grads, weight) =>
        {
            Array.Fill(scale, weight);
            AddScaled(grads, count, scale, dest);
        });
        dest.CopyTo(destination);
    }

    /// <summary>p, after checking the destination holds B·p values and the graph has per-example gradients.</summary>
    private long RequireGradients(int count, int destinationLength)
    {
        long p = Dimension;
        if (destinationLength != count * p)
        {
            throw new ArgumentException($"batch of {count}: destination needs {count * p} values, got {destinationLength}");
        }
        if (p == 0)
        {
            throw new GraphContractException($"{_vjp.Label}: the gradient graph has no grad.* outputs (per-example gradients)");
        }
        return p;
    }

    /// <summary>dest[b] += scale[b] · (example b's gradient, the grad.* outputs concatenated).</summary>
    private void AddScaled(Dictionary<string, float[]> grads, int count, float[] scale, float[] dest)
    {
        long p = Dimension;
        long offset = 0;
        for (int k = 0; k < _vjp.GradientOutputs.Count; k++)
        {
            var g = grads[_vjp.GradientOutputs[k]];
            int n = checked((int)_sizes[k]);
            for (int b = 0; b < count; b++)
            {
                var target = dest.AsSpan(checked((int)(b * p + offset)), n);
                System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(g.AsSpan(b * n, n), scale[b], target, target);
            }
            offset += n;
        }
    }

    private void CheckBatch(ReadOnlySpan<float> values, int count, string name)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (values.Length != (long)count * ExampleLength)
        {
            throw new ArgumentException($"batch of {count}: {name} need {(long)count * ExampleLength} values, got {values.Length}", name);
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
/// One (timestep, draw) pair of a batch as <see cref="GradientSource.ForEachPair(ReadOnlySpan{float}, int, IReadOnlyList{string}, ReadOnlySpan{long}, Action{PairBatch}, CotangentFunction)"/>
/// hands it out: its weight, each example's loss, and the gradient-graph outputs asked for.
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

    /// <summary>The gradient-graph outputs asked for, each B·(per-example size) values; empty when none were asked for.</summary>
    public Dictionary<string, float[]> Outputs { get; internal set; } = [];

    internal float[] NoiseArray { get; }

    internal float[] PredictionArray { get; }

    /// <summary>The diffusion loss ‖ε − ε̂‖²/D of example <paramref name="example"/> at this pair, in float64.</summary>
    public double Loss(int example)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(example);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(example, Count);
        return Measurement.Loss(PredictionArray.AsSpan(example * _exampleLength, _exampleLength), NoiseArray.AsSpan(example * _exampleLength, _exampleLength));
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
