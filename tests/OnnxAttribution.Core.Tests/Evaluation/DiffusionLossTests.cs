using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Core.Tests.Evaluation;

[TestFixture]
public sealed class DiffusionLossTests
{
    /// <summary>Predicts ε̂ = c·x_t, so the loss has a closed form per pair.</summary>
    private sealed class Scaled(float c) : IDenoiser
    {
        public int Channels => 1;

        public int ImageSize => 2;

        public void Predict(ReadOnlySpan<float> xt, ReadOnlySpan<long> t, int batch, Span<float> eps)
        {
            for (int i = 0; i < xt.Length; i++)
            {
                eps[i] = c * xt[i];
            }
        }
    }

    [Test]
    public void Evaluate_MatchesHandComputedLoss_AtAnyBatchSize()
    {
        var schedule = new NoiseSchedule(new ScheduleSettings(ScheduleKind.Linear, 1000));
        var plan = new FeaturizationPlan([10, 500, 990], 2, 4, MeasurementKind.Loss);
        var images = new float[] { 0.5f, -0.5f, 1f, 0f, -1f, 0.25f, 0.75f, -0.25f, 0f, 0f, 0.1f, 0.2f };
        var model = new Scaled(0.7f);
        var expected = new double[3];
        var noise = new float[4];
        for (int j = 0; j < 3; j++)
        {
            long t = plan.Timesteps[j];
            double a = Math.Sqrt(schedule.AlphaBars[t]), s = Math.Sqrt(1 - schedule.AlphaBars[t]);
            for (int draw = 0; draw < 2; draw++)
            {
                plan.Noise(j, draw, noise);
                for (int b = 0; b < 3; b++)
                {
                    double sum = 0;
                    for (int p = 0; p < 4; p++)
                    {
                        float xt = (float)a * images[b * 4 + p] + (float)s * noise[p];
                        double diff = 0.7f * xt - noise[p];
                        sum += diff * diff;
                    }
                    expected[b] += sum / 4 / plan.Pairs;
                }
            }
        }
        Assert.That(DiffusionLoss.Measure(model, schedule, plan, images, 3, 64), Is.EqualTo(expected).Within(1e-5));
        Assert.That(DiffusionLoss.Measure(model, schedule, plan, images, 3, 2), Is.EqualTo(DiffusionLoss.Measure(model, schedule, plan, images, 3, 64)));
    }
    [Test]
    public void MeasureStates_LossOfEachStateAgainstItsTarget_AtAnyBatchSize()
    {
        var model = new Scaled(0.5f);
        float[][] states = [[1f, 2f, 3f, 4f], [0f, -2f, 0.5f, 1f], [2f, 2f, 2f, 2f]];
        float[][] targets = [[0f, 0f, 0f, 0f], [1f, 1f, 1f, 1f], [1f, 1f, 1f, 1f]];
        // ε̂ = x/2: (0.25 + 1 + 2.25 + 4)/4, (1 + 4 + 0.5625 + 0.25)/4, 0.
        var expected = new[] { 7.5 / 4, 5.8125 / 4, 0.0 };
        Assert.That(DiffusionLoss.MeasureStates(model, states, targets, [10, 20, 30]), Is.EqualTo(expected).Within(1e-12));
        Assert.That(DiffusionLoss.MeasureStates(model, states, targets, [10, 20, 30], batchSize: 2), Is.EqualTo(expected).Within(1e-12));
        Assert.Throws<ArgumentException>(() => DiffusionLoss.MeasureStates(model, states, targets, [10, 20]));
    }
}
