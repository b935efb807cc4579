using OnnxAttribution.Runtime.Gradients;

namespace OnnxAttribution.Core.Attribution;

/// <summary>The plan's pairs as runs of one example, and the averaged gradients accumulated straight from ONNX Runtime's outputs.</summary>
internal sealed partial class GradientSource
{
    /// <summary>
    /// The plan's pairs for one example in the runs
    /// <see cref="ForEachPair(ReadOnlySpan{float}, int, IReadOnlyList{string}, ReadOnlySpan{long}, Action{PairBatch}, CotangentFunction?, ReadOnlySpan{long})"/>
    /// makes for <paramref name="outputs"/> (the same chunks, timesteps, noise and weights), as inputs of the reduced graph. A
    /// fixed plan's runs are the same for every example: made once per run size and shared (read only).
    /// </summary>
    /// <param name="outputs">The gradient-graph outputs the runs are sized for.</param>
    /// <param name="row">The example's dataset row (a one-random-timestep plan draws from it; ignored by fixed plans).</param>
    internal IReadOnlyList<PairRun> PairRuns(IReadOnlyList<string> outputs, long row)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        return Plan.RandomTimestepRound is not null
            ? MakePairRuns(outputs, row)
            : _fixedRuns.GetOrAdd(PairsPerRun(outputs), _ => MakePairRuns(outputs, 0));
    }

    private List<PairRun> MakePairRuns(IReadOnlyList<string> outputs, long row)
    {
        int d = ExampleLength;
        int pairs = Plan.Pairs;
        var runs = new List<PairRun>();
        int done = 0;
        foreach (int n in RunSizes(outputs))
        {
            var run = new PairRun(new long[n], new float[n * d], new float[n], new float[n], new float[n]);
            for (int i = 0; i < n; i++)
            {
                int pair = done + i;
                int timestepIndex = pair / Plan.NoiseDraws;
                var noise = run.Noise.AsSpan(i * d, d);
                if (Plan.RandomTimestepRound is not null)
                {
                    run.Timesteps[i] = Plan.ExampleTimestep(row, _schedule.Timesteps);
                    Plan.ExampleNoise(row, noise);
                }
                else
                {
                    run.Timesteps[i] = Plan.Timesteps[timestepIndex];
                    Plan.Noise(timestepIndex, pair % Plan.NoiseDraws, noise);
                }
                run.SignalScales[i] = (float)Math.Sqrt(_schedule.AlphaBars[run.Timesteps[i]]);
                run.NoiseScales[i] = (float)Math.Sqrt(1 - _schedule.AlphaBars[run.Timesteps[i]]);
                run.Weights[i] = 1f / pairs;
            }
            runs.Add(run);
            done += n;
        }
        return runs;
    }

    /// <summary>
    /// The pairs of each run of one example for these outputs: chunks of near-equal size (30 pairs at 16 a run: 15 + 15),
    /// fixed by the plan and the outputs alone.
    /// </summary>
    private IEnumerable<int> RunSizes(IReadOnlyList<string> outputs)
    {
        int pairs = Plan.Pairs;
        int perRun = PairsPerRun(outputs);
        int chunks = (pairs + perRun - 1) / perRun;
        int done = 0;
        for (int c = 0; c < chunks; c++)
        {
            int n = (pairs - done) / (chunks - c);
            yield return n;
            done += n;
        }
    }

    /// <summary>Whether the plan draws each example's pair from its row; then the batch's rows must be given.</summary>
    /// <exception cref="ArgumentException">A one-random-timestep plan without one row per example.</exception>
    internal bool RequireRows(ReadOnlySpan<long> rows, int count)
    {
        bool random = Plan.RandomTimestepRound is not null;
        if (random && rows.Length != count)
        {
            throw new ArgumentException($"the plan draws one timestep per example from its dataset row: pass the {count} rows (got {rows.Length})", nameof(rows));
        }
        return random;
    }

    /// <summary>x_t = a·x₀ + s·ε, in float32 as every path forms it (the bits of the graph's input depend on it).</summary>
    private static void FormNoisy(ReadOnlySpan<float> x0, float a, float s, ReadOnlySpan<float> e, Span<float> destination)
    {
        for (int k = 0; k < x0.Length; k++)
        {
            destination[k] = a * x0[k] + s * e[k];
        }
    }

    /// <summary>
    /// <see cref="Compute(ReadOnlySpan{float}, int, Span{float}, Span{float}, ReadOnlySpan{long}, ReadOnlySpan{long})"/> for a graph that computes its
    /// own cotangent: each example's runs are added into its row straight from ONNX Runtime's output buffers, with no copy of
    /// the per-pair gradients (B·pairs·p values) in between.
    /// </summary>
    /// <remarks>
    /// The same bits as the pair-by-pair path: every value of a row receives the same products (the same runs, the same
    /// weights, <c>MultiplyAdd</c>) in the same order, pair after pair in plan order; only the order between rows, which never
    /// meet, differs.
    /// </remarks>
    private void ComputeInPlace(ReadOnlySpan<float> images, int count, Span<float> destination, Span<float> losses, ReadOnlySpan<long> rows,
        ReadOnlySpan<long> conditions)
    {
        // Accumulated in an array (a span cannot be captured by the run's callback), then copied out once.
        var dest = new float[count * Dimension];
        ComputeInPlace(images, count, dest, 0, losses, rows, conditions);
        dest.AsSpan(0, destination.Length).CopyTo(destination);
    }

    /// <summary>
    /// <see cref="ComputeInPlace(ReadOnlySpan{float}, int, Span{float}, Span{float}, ReadOnlySpan{long}, ReadOnlySpan{long})"/> straight into the
    /// count·p values of <paramref name="dest"/> from <paramref name="offset"/> (cleared first), with no buffer of its own: the
    /// dense extractor's chunks, which hold whole gradients under a memory budget.
    /// </summary>
    internal void ComputeInPlace(ReadOnlySpan<float> images, int count, float[] dest, long offset, Span<float> losses, ReadOnlySpan<long> rows,
        ReadOnlySpan<long> conditions = default)
    {
        bool random = RequireRows(rows, count);
        RequireConditions(conditions, count);
        int d = ExampleLength;
        long p = Dimension;
        IReadOnlyList<string> wanted = [VjpSession.OutputEps, .. _vjp.GradientOutputs];
        var weights = Measurement.CotangentWeights(Plan.Measurement, d);
        var xt = new float[Math.Min(Plan.Pairs, MaxPairsPerRun) * d];
        dest.AsSpan(checked((int)offset), checked((int)(count * p))).Clear();
        for (int b = 0; b < count; b++)
        {
            var x0 = images.Slice(b * d, d);
            double loss = 0;
            foreach (var run in PairRuns(_vjp.GradientOutputs, random ? rows[b] : 0))
            {
                int n = run.Count;
                for (int i = 0; i < n; i++)
                {
                    FormNoisy(x0, run.SignalScales[i], run.NoiseScales[i], run.Noise.AsSpan(i * d, d), xt.AsSpan(i * d, d));
                }
                loss += AddRun(xt.AsSpan(0, n * d), run, RunConditions(conditions, b, n), weights, wanted, dest, offset + b * p);
            }
            if (losses.Length > 0)
            {
                losses[b] = (float)loss;
            }
        }
    }

    /// <summary>One run of an example's pairs, each pair's gradient times its weight added to its row of <paramref name="dest"/>
    /// (from <paramref name="first"/>); returns Σ weight·loss.</summary>
    private double AddRun(ReadOnlySpan<float> xt, PairRun run, ReadOnlySpan<long> conditions, float[] weights, IReadOnlyList<string> wanted, float[] dest, long first)
    {
        int d = ExampleLength;
        int n = run.Count;
        double loss = 0;
        _vjp.RunMeasuredInPlace(xt, run.Timesteps, conditions, run.Noise, weights, n, wanted, values =>
        {
            var eps = values[0].GetTensorDataAsSpan<float>();
            for (int i = 0; i < n; i++)
            {
                loss += run.Weights[i] * Measurement.Loss(eps.Slice(i * d, d), run.Noise.AsSpan(i * d, d));
                long offset = 0;
                for (int k = 0; k < _sizes.Length; k++)
                {
                    int size = checked((int)_sizes[k]);
                    var target = dest.AsSpan(checked((int)(first + offset)), size);
                    System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(values[k + 1].GetTensorDataAsSpan<float>().Slice(i * size, size), run.Weights[i], target, target);
                    offset += size;
                }
            }
        });
        return loss;
    }
}
