using OnnxAttribution.Core.Gradients;

namespace OnnxAttribution.Core.Attribution;

/// <summary>The plan's pairs as runs of one example, and the averaged gradients accumulated straight from ONNX Runtime's outputs.</summary>
internal sealed partial class GradientSource
{
    /// <summary>
    /// The plan's pairs for one example in the runs <see cref="ForEachPair(ReadOnlySpan{float}, int, IReadOnlyList{string}, ReadOnlySpan{long}, Action{PairBatch}, CotangentFunction?)"/>
    /// makes for <paramref name="outputs"/> (the same chunks, timesteps, noise and weights), as inputs of the reduced graph.
    /// </summary>
    /// <param name="outputs">The gradient-graph outputs the runs are sized for.</param>
    /// <param name="row">The example's dataset row (a one-random-timestep plan draws from it; ignored by fixed plans).</param>
    internal IReadOnlyList<PairRun> PairRuns(IReadOnlyList<string> outputs, long row)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        int d = ExampleLength;
        int pairs = Plan.Pairs;
        int perRun = PairsPerRun(outputs);
        int chunks = (pairs + perRun - 1) / perRun;
        var runs = new List<PairRun>(chunks);
        int done = 0;
        for (int c = 0; c < chunks; c++)
        {
            int n = (pairs - done) / (chunks - c);
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
    /// <see cref="Compute(ReadOnlySpan{float}, int, Span{float}, Span{float}, ReadOnlySpan{long})"/> for a graph that computes its
    /// own cotangent: each example's runs are added into its row straight from ONNX Runtime's output buffers, with no copy of
    /// the per-pair gradients (B·pairs·p values) in between.
    /// </summary>
    /// <remarks>
    /// The same bits as the pair-by-pair path: every value of a row receives the same products (the same runs, the same
    /// weights, <c>MultiplyAdd</c>) in the same order, pair after pair in plan order; only the order between rows, which never
    /// meet, differs.
    /// </remarks>
    private void ComputeInPlace(ReadOnlySpan<float> images, int count, Span<float> destination, Span<float> losses, ReadOnlySpan<long> rows)
    {
        bool random = Plan.RandomTimestepRound is not null;
        if (random && rows.Length != count)
        {
            throw new ArgumentException($"the plan draws one timestep per example from its dataset row: pass the {count} rows (got {rows.Length})", nameof(rows));
        }
        int d = ExampleLength;
        long p = Dimension;
        var fixedRuns = random ? null : PairRuns(_vjp.GradientOutputs, 0);
        IReadOnlyList<string> wanted = [VjpSession.OutputEps, .. _vjp.GradientOutputs];
        var weights = Measurement.CotangentWeights(Plan.Measurement, d);
        var xt = new float[Math.Min(Plan.Pairs, MaxPairsPerRun) * d];
        // Accumulated in an array (a span cannot be captured by the run's callback), then copied out once.
        var dest = new float[count * p];
        for (int b = 0; b < count; b++)
        {
            var x0 = images.Slice(b * d, d);
            double loss = 0;
            foreach (var run in fixedRuns ?? PairRuns(_vjp.GradientOutputs, rows[b]))
            {
                int n = run.Count;
                for (int i = 0; i < n; i++)
                {
                    float a = run.SignalScales[i], s = run.NoiseScales[i];
                    var e = run.Noise.AsSpan(i * d, d);
                    var dst = xt.AsSpan(i * d, d);
                    for (int k = 0; k < d; k++)
                    {
                        dst[k] = a * x0[k] + s * e[k];
                    }
                }
                loss += AddRun(xt.AsSpan(0, n * d), run, weights, wanted, dest, b * p);
            }
            if (losses.Length > 0)
            {
                losses[b] = (float)loss;
            }
        }
        dest.CopyTo(destination);
    }

    /// <summary>One run of an example's pairs, each pair's gradient times its weight added to its row of <paramref name="dest"/>
    /// (from <paramref name="first"/>); returns Σ weight·loss.</summary>
    private double AddRun(ReadOnlySpan<float> xt, PairRun run, float[] weights, IReadOnlyList<string> wanted, float[] dest, long first)
    {
        int d = ExampleLength;
        int n = run.Count;
        double loss = 0;
        _vjp.RunMeasuredInPlace(xt, run.Timesteps, run.Noise, weights, n, wanted, values =>
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
