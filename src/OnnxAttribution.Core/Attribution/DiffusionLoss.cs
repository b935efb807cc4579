using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// A measurement of clean images averaged over a plan's fixed (timestep, noise) pairs, by forward passes only:
/// ℓ(x₀) = (1/P) Σ_{(t,ε)} f(ε̂(√ᾱ_t x₀ + √(1−ᾱ_t) ε, t)), with f the plan's measurement (for the diffusion loss
/// ‖ε − ε̂‖²/D, the simple loss of Ho et al. 2020, Eq. 14, at fixed draws). The measured output of the LDS (docs/methods.md)
/// and the query loss of an encoded ensemble.
/// </summary>
/// <remarks>
/// Every image sees the same draws (pair (j, d) uses <see cref="FeaturizationPlan.Noise"/>), so losses of one image under
/// several models differ by the models only (common random numbers). Sums are in float64.
/// </remarks>
public static class DiffusionLoss
{
    /// <summary>The measurement of each image under <paramref name="denoiser"/>.</summary>
    /// <param name="denoiser">The model.</param>
    /// <param name="schedule">Its noise schedule.</param>
    /// <param name="plan">The (timestep, draw) pairs and the measurement.</param>
    /// <param name="images">Clean images x₀ in [-1, 1], count·C·H·W values.</param>
    /// <param name="count">The number of images.</param>
    /// <param name="batchSize">(image, pair) evaluations per forward call; never changes a result.</param>
    /// <param name="conditions">For a conditional model, each image's condition value (its class label); empty otherwise.</param>
    /// <returns>count values.</returns>
    /// <exception cref="UserInputException">The plan does not fit the schedule.</exception>
    public static double[] Measure(IDenoiser denoiser, NoiseSchedule schedule, FeaturizationPlan plan, ReadOnlySpan<float> images, int count, int batchSize = 64,
        ReadOnlySpan<long> conditions = default)
    {
        ArgumentNullException.ThrowIfNull(denoiser);
        ArgumentNullException.ThrowIfNull(schedule);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        plan.Validate(schedule);
        int d = denoiser.Channels * denoiser.ImageSize * denoiser.ImageSize;
        if (images.Length != (long)count * d)
        {
            throw new ArgumentException($"{count} images of {denoiser.Channels}×{denoiser.ImageSize}×{denoiser.ImageSize} need {(long)count * d} values, got {images.Length}");
        }
        int pairs = plan.Pairs;
        var noise = new float[pairs * d];
        for (int p = 0; p < pairs; p++)
        {
            plan.Noise(p / plan.NoiseDraws, p % plan.NoiseDraws, noise.AsSpan(p * d, d));
        }
        var sums = new double[count];
        // The (image, pair) evaluations in order k = image·P + pair, cut into batches.
        long total = (long)count * pairs;
        int capacity = (int)Math.Min(batchSize, Math.Max(total, 1));
        var xt = new float[capacity * d];
        var eps = new float[capacity * d];
        var ts = new long[capacity];
        bool conditional = denoiser.Condition is not null;
        if (conditional && conditions.Length != count)
        {
            throw new ArgumentException($"the model takes a condition per image: {count} images need {count} condition values, got {conditions.Length}");
        }
        var ys = conditional ? new long[capacity] : [];
        for (long start = 0; start < total; start += capacity)
        {
            int b = (int)Math.Min(capacity, total - start);
            for (int k = 0; k < b; k++)
            {
                int image = (int)((start + k) / pairs), pair = (int)((start + k) % pairs);
                long t = plan.Timesteps[pair / plan.NoiseDraws];
                ts[k] = t;
                if (conditional)
                {
                    ys[k] = conditions[image];
                }
                float a = (float)Math.Sqrt(schedule.AlphaBars[t]);
                float s = (float)Math.Sqrt(1 - schedule.AlphaBars[t]);
                var x0 = images.Slice(image * d, d);
                var n = noise.AsSpan(pair * d, d);
                var dst = xt.AsSpan(k * d, d);
                for (int i = 0; i < d; i++)
                {
                    dst[i] = a * x0[i] + s * n[i];
                }
            }
            denoiser.Predict(xt.AsSpan(0, b * d), ts.AsSpan(0, b), conditional ? ys.AsSpan(0, b) : default, b, eps.AsSpan(0, b * d));
            for (int k = 0; k < b; k++)
            {
                int image = (int)((start + k) / pairs), pair = (int)((start + k) % pairs);
                sums[image] += Measurement.Value(plan.Measurement, eps.AsSpan(k * d, d), noise.AsSpan(pair * d, d));
            }
        }
        for (int i = 0; i < count; i++)
        {
            sums[i] /= pairs;
        }
        return sums;
    }
    /// <summary>
    /// The diffusion loss ‖ε* − ε̂(x_t, t)‖²/D of given noisy states against given target noises (no noising here): the
    /// per-step output of Journey-TRAK's evaluation, where x_t is a state of a sampling trajectory.
    /// </summary>
    /// <param name="denoiser">The model.</param>
    /// <param name="states">The states x_t, C·H·W values each.</param>
    /// <param name="targets">The target noise ε* of each state.</param>
    /// <param name="timesteps">The timestep of each state.</param>
    /// <param name="batchSize">States per forward call; never changes a result.</param>
    /// <param name="conditions">For a conditional model, each state's condition value; null otherwise.</param>
    /// <returns>One loss per state.</returns>
    public static double[] MeasureStates(IDenoiser denoiser, IReadOnlyList<float[]> states, IReadOnlyList<float[]> targets, IReadOnlyList<long> timesteps, int batchSize = 64,
        IReadOnlyList<long>? conditions = null)
    {
        ArgumentNullException.ThrowIfNull(denoiser);
        ArgumentNullException.ThrowIfNull(states);
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(timesteps);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        int count = states.Count, d = denoiser.Channels * denoiser.ImageSize * denoiser.ImageSize;
        if (targets.Count != count || timesteps.Count != count)
        {
            throw new ArgumentException($"{count} states need as many targets and timesteps, got {targets.Count} and {timesteps.Count}");
        }
        var result = new double[count];
        int capacity = Math.Max(1, Math.Min(batchSize, count));
        var xt = new float[capacity * d];
        var eps = new float[capacity * d];
        var ts = new long[capacity];
        var ys = new long[conditions is null ? 0 : capacity];
        for (int start = 0; start < count; start += capacity)
        {
            int b = Math.Min(capacity, count - start);
            for (int k = 0; k < ys.Length && k < b; k++)
            {
                ys[k] = conditions![start + k];
            }
            for (int k = 0; k < b; k++)
            {
                if (states[start + k].Length != d || targets[start + k].Length != d)
                {
                    throw new ArgumentException($"state {start + k}: expected {d} values in the state and the target");
                }
                states[start + k].CopyTo(xt.AsSpan(k * d, d));
                ts[k] = timesteps[start + k];
            }
            denoiser.Predict(xt.AsSpan(0, b * d), ts.AsSpan(0, b), ys.AsSpan(0, Math.Min(ys.Length, b)), b, eps.AsSpan(0, b * d));
            for (int k = 0; k < b; k++)
            {
                result[start + k] = Measurement.Value(MeasurementKind.Loss, eps.AsSpan(k * d, d), targets[start + k]);
            }
        }
        return result;
    }
}
