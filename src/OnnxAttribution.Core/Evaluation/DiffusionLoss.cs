using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Models;
using OnnxAttribution.Core.Runtime;

namespace OnnxAttribution.Core.Evaluation;

/// <summary>
/// The measured output of the LDS and the counterfactual check: an image's diffusion loss ‖ε − ε_θ(x_t, t)‖²/D averaged
/// over a fixed plan of (t, ε) pairs — the same pairs for every model and image, so differences come from the weights.
/// </summary>
public static class DiffusionLoss
{
    /// <summary>Each image's loss averaged over the plan's pairs (the plan's measurement is ignored).</summary>
    /// <param name="denoiser">The model.</param>
    /// <param name="schedule">Its noise schedule.</param>
    /// <param name="plan">Timesteps × noise draws.</param>
    /// <param name="images">count·C·H·W values in [-1, 1].</param>
    /// <param name="count">Number of images.</param>
    /// <param name="batchSize">Images per forward call (does not change the result).</param>
    public static double[] Evaluate(IDenoiser denoiser, NoiseSchedule schedule, FeaturizationPlan plan, ReadOnlySpan<float> images, int count, int batchSize = 64)
    {
        ArgumentNullException.ThrowIfNull(denoiser);
        ArgumentNullException.ThrowIfNull(schedule);
        ArgumentNullException.ThrowIfNull(plan);
        plan.Validate(schedule);
        int d = denoiser.Channels * denoiser.ImageSize * denoiser.ImageSize;
        if (images.Length != (long)count * d)
        {
            throw new ArgumentException($"{count} images of {d} values need {(long)count * d} values, got {images.Length}");
        }
        var losses = new double[count];
        var noise = new float[d];
        int b = Math.Max(1, Math.Min(batchSize, count));
        var xt = new float[b * d];
        var eps = new float[b * d];
        var ts = new long[b];
        for (int j = 0; j < plan.Timesteps.Count; j++)
        {
            long t = plan.Timesteps[j];
            float a = (float)Math.Sqrt(schedule.AlphaBars[t]);
            float s = (float)Math.Sqrt(1 - schedule.AlphaBars[t]);
            for (int draw = 0; draw < plan.NoiseDraws; draw++)
            {
                plan.Noise(j, draw, noise);
                for (int start = 0; start < count; start += b)
                {
                    int n = Math.Min(b, count - start);
                    for (int i = 0; i < n; i++)
                    {
                        var x0 = images.Slice((start + i) * d, d);
                        var dst = xt.AsSpan(i * d, d);
                        for (int p = 0; p < d; p++)
                        {
                            dst[p] = (a * x0[p]) + (s * noise[p]);
                        }
                        ts[i] = t;
                    }
                    denoiser.Predict(xt.AsSpan(0, n * d), ts.AsSpan(0, n), n, eps.AsSpan(0, n * d));
                    for (int i = 0; i < n; i++)
                    {
                        losses[start + i] += Measurement.Value(MeasurementKind.Loss, eps.AsSpan(i * d, d), noise);
                    }
                }
            }
        }
        for (int i = 0; i < count; i++)
        {
            losses[i] /= plan.Pairs;
        }
        return losses;
    }
}
