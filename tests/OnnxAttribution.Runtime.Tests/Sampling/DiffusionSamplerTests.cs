using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Sampling;

namespace OnnxAttribution.Runtime.Tests.Sampling;

public sealed class DiffusionSamplerTests
{
    private static readonly NoiseSchedule Linear1000 = new(new ScheduleSettings(ScheduleKind.Linear, 1000));

    private static float[] Target(int d) => Enumerable.Range(0, d).Select(i => (float)Math.Sin(i * 0.7) * 0.9f).ToArray();

    [TestCase(SamplerKind.Ddpm, 1000, 0.0, false)]
    [TestCase(SamplerKind.Ddpm, 50, 0.0, true)]
    [TestCase(SamplerKind.Ddim, 50, 0.0, false)]
    [TestCase(SamplerKind.Ddim, 20, 1.0, true)]
    [TestCase(SamplerKind.Ddim, 1, 0.0, false)]
    public void Sample_SinglePointData_LandsOnThePoint(SamplerKind kind, int steps, double eta, bool clip)
    {
        var target = Target(2 * 4 * 4);
        var denoiser = new PointDenoiser(target, Linear1000, 2, 4);
        var result = new DiffusionSampler(denoiser, Linear1000).Sample([1, 2, 3], new SamplerOptions(kind, steps, eta, clip));
        Assert.That(denoiser.Calls, Is.EqualTo(steps));
        for (int k = 0; k < 3; k++)
        {
            Assert.That(result.Image(k).ToArray(), Is.EqualTo(target).Within(1e-4), $"image {k}");
        }
    }

    // With the exact ε̂ of Gaussian data, the reverse process recovers the data's moments up to discretisation error,
    // which is small at S = T (the linear-Gaussian recursion gives variances 0.0906 for DDPM and 0.0891 for DDIM η = 0).
    // Few-step DDIM is biased here (50 steps give 0.075 by the same recursion), so only full-length runs are checked.
    [TestCase(SamplerKind.Ddpm, 0.0)]
    [TestCase(SamplerKind.Ddim, 0.0)]
    [TestCase(SamplerKind.Ddim, 1.0)]
    public void Sample_GaussianDataAllSteps_MatchesDataMoments(SamplerKind kind, double eta)
    {
        // 16 images × 256 pixels = 4096 draws of N(0.2, 0.09): standard errors 0.005 (mean) and 0.002 (variance).
        const double mean = 0.2, variance = 0.09;
        var denoiser = new GaussianDenoiser(mean, variance, Linear1000, 1, 16);
        var seeds = Enumerable.Range(100, 16).Select(i => (long)i).ToArray();
        var result = new DiffusionSampler(denoiser, Linear1000).Sample(seeds, new SamplerOptions(kind, 1000, eta, ClipDenoised: false));
        double m = result.Images.Average(v => (double)v);
        double v2 = result.Images.Average(v => (v - m) * (v - m));
        Assert.That(m, Is.EqualTo(mean).Within(0.02));
        Assert.That(v2, Is.EqualTo(variance).Within(0.009));
    }

    [Test]
    public void Sample_SeedInAnotherBatch_GivesSameImage()
    {
        var denoiser = new GaussianDenoiser(0, 0.5, Linear1000, 1, 4);
        var sampler = new DiffusionSampler(denoiser, Linear1000);
        var options = new SamplerOptions(SamplerKind.Ddpm, 30);
        var batch = sampler.Sample([5, 6, 7], options);
        var single = sampler.Sample([6], options);
        Assert.That(single.Image(0).ToArray(), Is.EqualTo(batch.Image(1).ToArray()));
        var again = sampler.Sample([5, 6, 7], options);
        Assert.That(again.Images, Is.EqualTo(batch.Images));
    }

    [Test]
    public void Sample_DdpmFirstStep_MatchesAlgorithm2ByHand()
    {
        var schedule = new NoiseSchedule(new ScheduleSettings(ScheduleKind.Linear, 10, 0.01, 0.2));
        var result = new DiffusionSampler(new ConstantDenoiser(0.3f, 1, 2), schedule)
            .Sample([11], new SamplerOptions(SamplerKind.Ddpm, Steps: 2, ClipDenoised: false, RecordTrajectory: true));
        var traj = result.Trajectories![0];
        Assert.That(traj.Timesteps, Is.EqualTo(new long[] { 9, 4 }));
        var x = new float[4];
        var z = new float[4];
        new CounterRng(11, 0).FillNormal(x);
        new CounterRng(11, 1).FillNormal(z);
        Assert.That(traj.State(0).ToArray(), Is.EqualTo(x));
        double ab = schedule.AlphaBars[9], abPrev = schedule.AlphaBars[4];
        double beta = 1 - ab / abPrev, alpha = 1 - beta;
        var expected = x.Select((xi, i) => (float)(1 / Math.Sqrt(alpha) * (xi - beta / Math.Sqrt(1 - ab) * 0.3) + Math.Sqrt(beta) * z[i])).ToArray();
        Assert.That(traj.State(1).ToArray(), Is.EqualTo(expected).Within(1e-5));
        // Last step: x₀ = x̂₀ with no noise.
        double ab4 = schedule.AlphaBars[4];
        var x0 = expected.Select(v => (float)((v - Math.Sqrt(1 - ab4) * 0.3) / Math.Sqrt(ab4))).ToArray();
        Assert.That(traj.Final.ToArray(), Is.EqualTo(x0).Within(1e-5));
        Assert.That(result.Images, Is.EqualTo(traj.Final.ToArray()));
    }

    [Test]
    public void Sample_DdimEtaZeroFirstStep_MatchesEq12ByHand()
    {
        var schedule = new NoiseSchedule(new ScheduleSettings(ScheduleKind.Cosine, 20));
        var result = new DiffusionSampler(new ConstantDenoiser(-0.4f, 1, 2), schedule)
            .Sample([3], new SamplerOptions(SamplerKind.Ddim, Steps: 4, Eta: 0, ClipDenoised: false, RecordTrajectory: true));
        var traj = result.Trajectories![0];
        Assert.That(traj.Timesteps, Is.EqualTo(new long[] { 19, 14, 9, 4 }));
        var x = traj.State(0).ToArray();
        double ab = schedule.AlphaBars[19], abPrev = schedule.AlphaBars[14];
        var expected = x.Select(xi =>
        {
            double x0 = (xi - Math.Sqrt(1 - ab) * -0.4) / Math.Sqrt(ab);
            return (float)(Math.Sqrt(abPrev) * x0 + Math.Sqrt(1 - abPrev) * -0.4);
        }).ToArray();
        Assert.That(traj.State(1).ToArray(), Is.EqualTo(expected).Within(1e-5));
    }

    [Test]
    public void Sample_ClipOn_FinalImageWithinRange()
    {
        var far = Enumerable.Repeat(3f, 4).ToArray(); // data outside [-1, 1]
        var denoiser = new PointDenoiser(far, Linear1000, 1, 2);
        var clipped = new DiffusionSampler(denoiser, Linear1000).Sample([1], new SamplerOptions(SamplerKind.Ddim, 10, ClipDenoised: true));
        Assert.That(clipped.Images, Is.All.InRange(-1.0001f, 1.0001f));
        var free = new DiffusionSampler(denoiser, Linear1000).Sample([1], new SamplerOptions(SamplerKind.Ddim, 10, ClipDenoised: false));
        Assert.That(free.Images, Is.All.EqualTo(3f).Within(1e-3));
    }

    [Test]
    public void Sample_RecordTrajectory_HasStepsPlusOneStates()
    {
        var denoiser = new GaussianDenoiser(0, 1, Linear1000, 1, 2);
        var result = new DiffusionSampler(denoiser, Linear1000).Sample([8, 9], new SamplerOptions(SamplerKind.Ddim, 5, RecordTrajectory: true));
        Assert.That(result.Trajectories, Has.Count.EqualTo(2));
        var t = result.Trajectories![1];
        Assert.That((t.Steps, t.StateCount, t.Seed, t.Kind, t.TrainTimesteps), Is.EqualTo((5, 6, 9L, SamplerKind.Ddim, 1000)));
        Assert.That(t.Timesteps, Is.EqualTo(result.Timesteps));
        Assert.That(t.Final.ToArray(), Is.EqualTo(result.Image(1).ToArray()));
        Assert.That(new DiffusionSampler(denoiser, Linear1000).Sample([8], new SamplerOptions(Steps: 5)).Trajectories, Is.Null);
    }

    [Test]
    public void Sample_Progress_ReportsEachStep()
    {
        var reports = new List<int>();
        var progress = new SynchronousProgress(reports.Add);
        new DiffusionSampler(new ConstantDenoiser(0, 1, 1), Linear1000).Sample([1], new SamplerOptions(Steps: 4), progress);
        Assert.That(reports, Is.EqualTo(new[] { 1, 2, 3, 4 }));
    }

    [TestCase(0)]
    [TestCase(1001)]
    public void Sample_StepsOutOfRange_Throws(int steps)
    {
        var sampler = new DiffusionSampler(new ConstantDenoiser(0, 1, 1), Linear1000);
        Assert.That(() => sampler.Sample([1], new SamplerOptions(Steps: steps)),
            Throws.TypeOf<UserInputException>().With.Message.Contains("1..1000"));
    }

    [Test]
    public void Sample_Cancelled_Throws()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var sampler = new DiffusionSampler(new ConstantDenoiser(0, 1, 1), Linear1000);
        Assert.That(() => sampler.Sample([1], new SamplerOptions(), null, cts.Token), Throws.InstanceOf<OperationCanceledException>());
    }

    private sealed class SynchronousProgress(Action<int> report) : IProgress<int>
    {
        public void Report(int value) => report(value);
    }
}

public sealed class SamplingTimestepsTests
{
    [Test]
    public void Evenly_50Of1000_TrailingSpacing()
    {
        var ts = SamplingTimesteps.Evenly(1000, 50);
        Assert.That(ts, Has.Length.EqualTo(50));
        Assert.That(ts[0], Is.EqualTo(999));
        Assert.That(ts[1], Is.EqualTo(979));
        Assert.That(ts[^1], Is.EqualTo(19));
        Assert.That(ts, Is.Ordered.Descending);
    }

    [Test]
    public void Evenly_AllSteps_EveryTimestep()
    {
        Assert.That(SamplingTimesteps.Evenly(6, 6), Is.EqualTo(new long[] { 5, 4, 3, 2, 1, 0 }));
        Assert.That(SamplingTimesteps.Evenly(10, 3), Is.EqualTo(new long[] { 9, 5, 2 }));
    }
}
