using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Gradients;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// Per-example gradients of a measurement, averaged over a plan's (timestep, noise) pairs: for each pair,
/// x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε, ε̂ from forward.onnx, the measurement's cotangent, then vjp.onnx.
/// </summary>
/// <remarks>
/// Averaging before projection follows D-TRAK's code. The gradient of one example is the concatenation of the
/// graph's <c>grad.*</c> outputs in their order (the model's parameter order).
/// </remarks>
internal sealed partial class GradientSource
{
    private readonly IDenoiser _forward;
    private readonly VjpSession _vjp;
    private readonly NoiseSchedule _schedule;
    private readonly long[] _sizes;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, List<PairRun>> _fixedRuns = new();

    /// <summary>Creates the source on a model's forward and gradient graphs, with <paramref name="plan"/> checked against <paramref name="schedule"/>.</summary>
    /// <exception cref="UserInputException">The plan does not fit the schedule.</exception>
    /// <exception cref="GraphContractException">The graphs' image geometries differ, or the gradient graph has no gradient or factor outputs.</exception>
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
        if (forward.Condition != vjp.Condition)
        {
            throw new GraphContractException($"{vjp.Label}: the gradient graph's condition ({vjp.Condition?.Input ?? "none"}) differs from the forward graph's " +
                $"({forward.Condition?.Input ?? "none"})");
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

    /// <summary>The (timestep, noise) pairs every example's gradient is averaged over, and the measurement differentiated.</summary>
    public FeaturizationPlan Plan { get; }

    /// <summary>The length p of one example's gradient (the number of differentiated parameters).</summary>
    public long Dimension { get; }

    /// <summary>The gradient graph's grad.* outputs in parameter order: one example's gradient is their concatenation.</summary>
    public IReadOnlyList<string> GradientOutputs => _vjp.GradientOutputs;

    /// <summary>The model's condition (every example carries one value), or null for an unconditional model.</summary>
    public ConditionSpec? Condition => _vjp.Condition;

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
    /// <param name="conditions">One condition value per image for a conditional model (<see cref="Condition"/>); empty otherwise.</param>
    public void ForEachPair(ReadOnlySpan<float> images, int count, IReadOnlyList<string> outputs, Action<Dictionary<string, float[]>, float> accumulate,
        ReadOnlySpan<long> rows = default, CotangentFunction? cotangent = null, ReadOnlySpan<long> conditions = default)
    {
        ArgumentNullException.ThrowIfNull(accumulate);
        ForEachPair(images, count, outputs, rows, pair => accumulate(pair.Outputs, pair.Weight), cotangent, conditions);
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
    /// <param name="handle">Called once per pair, in plan order; each <see cref="PairBatch"/> is valid only during its call.</param>
    /// <param name="cotangent">The cotangents fed to the graph (e.g. Monte-Carlo Fisher samples for K-FAC); null for the plan's measurement.</param>
    /// <param name="conditions">One condition value per image for a conditional model (<see cref="Condition"/>); empty otherwise.</param>
    /// <remarks>
    /// <para>ONNX Runtime runs one example at a time, its pairs as the run's batch (<see cref="PairsPerRun"/> at a time), never
    /// several examples in one run. Its CPU kernels choose their blocking and reduction order by the shapes of a run, so an
    /// example batched with others could differ in the last bits from the same example alone; this way every example's
    /// outputs are the same bits whatever B, the other examples, the batch boundaries, shards or a resumed run.</para>
    /// </remarks>
    public void ForEachPair(ReadOnlySpan<float> images, int count, IReadOnlyList<string> outputs, ReadOnlySpan<long> rows, Action<PairBatch> handle,
        CotangentFunction? cotangent = null, ReadOnlySpan<long> conditions = default)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(handle);
        int d = ExampleLength;
        CheckBatch(images, count, nameof(images));
        RequireConditions(conditions, count);
        bool random = RequireRows(rows, count);
        int pairs = Plan.Pairs;
        var noise = new float[d];
        int done = 0;
        foreach (int n in RunSizes(outputs))
        {
            var chunk = new PairBatch[n];
            var ts = new long[count * n];
            for (int i = 0; i < n; i++)
            {
                int pair = done + i;
                chunk[i] = new PairBatch(count, d, 1f / pairs, pair / Plan.NoiseDraws, pair % Plan.NoiseDraws);
                for (int b = 0; b < count; b++)
                {
                    if (random)
                    {
                        ts[b * n + i] = Plan.ExampleTimestep(rows[b], _schedule.Timesteps);
                        Plan.ExampleNoise(rows[b], chunk[i].NoiseArray.AsSpan(b * d, d));
                    }
                    else
                    {
                        ts[b * n + i] = Plan.Timesteps[chunk[i].TimestepIndex];
                    }
                }
                if (!random)
                {
                    Plan.Noise(chunk[i].TimestepIndex, chunk[i].Draw, noise);
                    for (int b = 0; b < count; b++)
                    {
                        noise.CopyTo(chunk[i].NoiseArray.AsSpan(b * d, d));
                    }
                }
            }
            RunChunk(images, count, chunk, ts, outputs, cotangent, conditions);
            foreach (var pair in chunk)
            {
                handle(pair);
            }
            done += n;
        }
    }

    /// <summary>The most pairs of one example that go into one run.</summary>
    public const int MaxPairsPerRun = 16;

    /// <summary>About the most output values one example's run may hold at once (32 MB of float32), so that large outputs
    /// (per-example gradients, Kronecker factors) take fewer pairs per run.</summary>
    private const long MaxValuesPerRun = 1L << 23;

    /// <summary>How many pairs of one example go into one run for these outputs: up to <see cref="MaxPairsPerRun"/>, fewer when
    /// the outputs are large. It depends on the graph and the outputs only, never on the batch.</summary>
    public int PairsPerRun(IReadOnlyList<string> outputs)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        long perPair = ExampleLength;
        foreach (var o in outputs)
        {
            perPair += _vjp.OutputShapes.TryGetValue(o, out var shape) ? shape.Skip(1).Aggregate(1L, (a, b) => a * Math.Max(1L, b)) : ExampleLength;
        }
        return (int)Math.Clamp(MaxValuesPerRun / perPair, 1, MaxPairsPerRun);
    }

    /// <summary>
    /// One chunk of pairs on a batch: x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε per example and pair, then per example one run of its
    /// pairs (ε̂ and the gradient graph, or the forward graph, then the cotangents, then the gradient graph), each run's rows
    /// scattered into the pairs' B-row arrays.
    /// </summary>
    /// <remarks>The timesteps <paramref name="ts"/> are example-major: example b's pair i at b·n + i.</remarks>
    private void RunChunk(ReadOnlySpan<float> images, int count, PairBatch[] chunk, long[] ts, IReadOnlyList<string> outputs, CotangentFunction? cotangent,
        ReadOnlySpan<long> conditions)
    {
        int d = ExampleLength;
        int n = chunk.Length;
        var xt = new float[n * d];
        var target = new float[n * d];
        var prediction = new float[n * d];
        bool measured = outputs.Count > 0 && cotangent is null && _vjp.CotangentFromOutput;
        var states = measured || outputs.Count == 0 ? null : new float[count * n * d];
        for (int b = 0; b < count; b++)
        {
            var x0 = images.Slice(b * d, d);
            for (int i = 0; i < n; i++)
            {
                long t = ts[b * n + i];
                float a = (float)Math.Sqrt(_schedule.AlphaBars[t]);
                float s = (float)Math.Sqrt(1 - _schedule.AlphaBars[t]);
                var e = chunk[i].NoiseArray.AsSpan(b * d, d);
                FormNoisy(x0, a, s, e, xt.AsSpan(i * d, d));
                e.CopyTo(target.AsSpan(i * d, d));
            }
            var tb = ts.AsSpan(b * n, n);
            var yb = RunConditions(conditions, b, n);
            if (measured)
            {
                var result = RunMeasurement(xt, tb, target, n, outputs, yb);
                Scatter(result[VjpSession.OutputEps], chunk, b, pair => pair.PredictionArray);
                Scatter(result, outputs, chunk, b, count);
                continue;
            }
            _forward.Predict(xt, tb, yb, n, prediction);
            Scatter(prediction, chunk, b, pair => pair.PredictionArray);
            xt.CopyTo(states.AsSpan(b * n * d, n * d));
        }
        if (states is null)
        {
            return;
        }
        var cot = new float[count * d];
        var cotangents = new float[count * n * d];
        for (int i = 0; i < n; i++)
        {
            var pair = chunk[i];
            if (cotangent is null)
            {
                Measurement.Cotangent(Plan.Measurement, pair.PredictionArray, pair.NoiseArray, d, cot);
            }
            else
            {
                cotangent(pair.TimestepIndex, pair.Draw, pair.PredictionArray, pair.NoiseArray, cot);
            }
            for (int b = 0; b < count; b++)
            {
                cot.AsSpan(b * d, d).CopyTo(cotangents.AsSpan((b * n + i) * d, d));
            }
        }
        for (int b = 0; b < count; b++)
        {
            var result = _vjp.Run(states.AsSpan(b * n * d, n * d), ts.AsSpan(b * n, n), cotangents.AsSpan(b * n * d, n * d), n, outputs,
                RunConditions(conditions, b, n));
            Scatter(result, outputs, chunk, b, count);
        }
    }

    /// <summary>Row i of one example's run (n rows of the same size) into pair i's B-row array, at example b.</summary>
    private static void Scatter(float[] run, PairBatch[] chunk, int b, Func<PairBatch, float[]> destination)
    {
        int size = run.Length / chunk.Length;
        for (int i = 0; i < chunk.Length; i++)
        {
            run.AsSpan(i * size, size).CopyTo(destination(chunk[i]).AsSpan(b * size, size));
        }
    }

    /// <summary>Each requested output of one example's run into the pairs' <see cref="PairBatch.Outputs"/> (allocated for B rows on first use).</summary>
    private static void Scatter(Dictionary<string, float[]> run, IReadOnlyList<string> outputs, PairBatch[] chunk, int b, int count)
    {
        foreach (var o in outputs)
        {
            int size = run[o].Length / chunk.Length;
            foreach (var pair in chunk)
            {
                if (!pair.Outputs.ContainsKey(o))
                {
                    pair.Outputs[o] = new float[(long)count * size];
                }
            }
            Scatter(run[o], chunk, b, pair => pair.Outputs[o]);
        }
    }

    /// <summary>
    /// One run of a graph that computes the plan measurement's cotangent from its own ε̂ (instead of a forward pass, then the
    /// graph): the requested outputs and <c>eps</c>.
    /// </summary>
    private Dictionary<string, float[]> RunMeasurement(ReadOnlySpan<float> xt, ReadOnlySpan<long> ts, ReadOnlySpan<float> noise, int count, IReadOnlyList<string> outputs,
        ReadOnlySpan<long> conditions)
    {
        var wanted = outputs.Contains(VjpSession.OutputEps) ? outputs : [VjpSession.OutputEps, .. outputs];
        return _vjp.RunMeasured(xt, ts, noise, Measurement.CotangentWeights(Plan.Measurement, ExampleLength), count, wanted, conditions);
    }

    /// <summary>Checks one condition value per image for a conditional model, none for an unconditional one.</summary>
    /// <exception cref="ArgumentException">They do not fit.</exception>
    internal void RequireConditions(ReadOnlySpan<long> conditions, int count) =>
        OnnxDenoiser.CheckConditions(Condition, conditions, count, _vjp.Label);

    /// <summary>Example <paramref name="b"/>'s condition value repeated for the <paramref name="n"/> pairs of its run; empty when
    /// there are no conditions (an unconditional model: <see cref="RequireConditions"/> has checked which).</summary>
    internal static long[] RunConditions(ReadOnlySpan<long> conditions, int b, int n)
    {
        if (conditions.IsEmpty)
        {
            return [];
        }
        var y = new long[n];
        Array.Fill(y, conditions[b]);
        return y;
    }

    /// <summary>
    /// <see cref="Compute(ReadOnlySpan{float}, int, Span{float}, Span{float}, ReadOnlySpan{long}, ReadOnlySpan{long})"/> into count·p values of an array the
    /// caller keeps, from <paramref name="offset"/>: a graph that computes its own cotangent adds its runs there directly, with no
    /// buffer of its own.
    /// </summary>
    internal void Compute(ReadOnlySpan<float> images, int count, float[] destination, long offset, Span<float> losses, ReadOnlySpan<long> rows,
        ReadOnlySpan<long> conditions = default)
    {
        if (_vjp.CotangentFromOutput && !Plan.NormalizePairs)
        {
            CheckBatch(images, count, nameof(images));
            RequireConditions(conditions, count);
            RequireGradients(count, checked((int)(count * Dimension)));
            if (losses.Length != 0 && losses.Length != count)
            {
                throw new ArgumentException($"batch of {count}: losses need 0 or {count} values, got {losses.Length}", nameof(losses));
            }
            ComputeInPlace(images, count, destination, offset, losses, rows, conditions);
            return;
        }
        Compute(images, count, destination.AsSpan(checked((int)offset), checked((int)(count * Dimension))), losses, rows, conditions);
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
    /// <param name="conditions">One condition value per image for a conditional model (<see cref="Condition"/>); empty otherwise.</param>
    public void Compute(ReadOnlySpan<float> images, int count, Span<float> destination, Span<float> losses = default, ReadOnlySpan<long> rows = default,
        ReadOnlySpan<long> conditions = default)
    {
        CheckBatch(images, count, nameof(images));
        RequireConditions(conditions, count);
        long p = RequireGradients(count, destination.Length);
        if (losses.Length != 0 && losses.Length != count)
        {
            throw new ArgumentException($"batch of {count}: losses need 0 or {count} values, got {losses.Length}", nameof(losses));
        }
        if (_vjp.CotangentFromOutput && !Plan.NormalizePairs)
        {
            ComputeInPlace(images, count, destination, losses, rows, conditions);
            return;
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
        }, null, conditions);
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
    /// <param name="images">B clean images.</param>
    /// <param name="count">B.</param>
    /// <param name="conditions">One condition value per image for a conditional model (<see cref="Condition"/>); empty otherwise.</param>
    public ExampleBatch Clean(ReadOnlySpan<float> images, int count, ReadOnlySpan<long> conditions = default)
    {
        CheckBatch(images, count, nameof(images));
        RequireConditions(conditions, count);
        var x0 = images.ToArray();
        var y = conditions.ToArray();
        return new ExampleBatch(count, (outputs, accumulate) => ForEachPair(x0, count, outputs, accumulate, default, null, y)) { CleanImages = x0, Conditions = y };
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
    /// <param name="conditions">One condition value per image for a conditional model (<see cref="Condition"/>); empty otherwise.</param>
    public ExampleBatch Noisy(ReadOnlySpan<float> noisy, ReadOnlySpan<float> targetNoise, long timestep, int count, ReadOnlySpan<long> conditions = default)
    {
        CheckBatch(noisy, count, nameof(noisy));
        RequireConditions(conditions, count);
        var y = conditions.ToArray();
        CheckBatch(targetNoise, count, nameof(targetNoise));
        ArgumentOutOfRangeException.ThrowIfNegative(timestep);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(timestep, _schedule.Timesteps);
        var xt = noisy.ToArray();
        var eps = targetNoise.ToArray();
        var ts = new long[count];
        Array.Fill(ts, timestep);
        return new ExampleBatch(count, (outputs, accumulate) =>
        {
            // One example per run, as in ForEachPair: an example's outputs do not depend on the others of the batch.
            int d = ExampleLength;
            var merged = new Dictionary<string, float[]>();
            var prediction = new float[d];
            var cot = new float[d];
            for (int b = 0; b < count; b++)
            {
                var x = xt.AsSpan(b * d, d);
                var e = eps.AsSpan(b * d, d);
                var yb = RunConditions(y, b, 1);
                Dictionary<string, float[]> result;
                if (_vjp.CotangentFromOutput)
                {
                    result = RunMeasurement(x, ts.AsSpan(b, 1), e, 1, outputs, yb);
                }
                else
                {
                    _forward.Predict(x, ts.AsSpan(b, 1), yb, 1, prediction);
                    Measurement.Cotangent(Plan.Measurement, prediction, e, d, cot);
                    result = _vjp.Run(x, ts.AsSpan(b, 1), cot, 1, outputs, yb);
                }
                foreach (var (name, values) in result)
                {
                    if (!merged.TryGetValue(name, out var all))
                    {
                        merged[name] = all = new float[(long)count * values.Length];
                    }
                    values.CopyTo(all.AsSpan(b * values.Length));
                }
            }
            accumulate(merged, 1f);
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
