using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Runtime.Sampling;

/// <summary>
/// Generates images with a denoiser and a noise schedule by DDPM ancestral sampling or DDIM.
/// </summary>
/// <remarks>
/// <para>Every image draws its noise from its own seed through <see cref="CounterRng"/>: stream 0 gives x_T, stream 1 + s the
/// noise z added at sampling step s (s = 0 for the first step). So image k is the same whatever the batch it is in
/// (given a denoiser whose output for one image does not depend on the others).</para>
/// <para>With timesteps τ_S &gt; … &gt; τ_1 (<see cref="SamplingTimesteps.Evenly"/>) and ᾱ_prev = ᾱ at the next timestep (1 after τ_1),
/// each step first predicts x̂₀ = (x_t − √(1−ᾱ) ε̂)/√ᾱ (optionally clipped to [-1, 1]), then:</para>
/// <para>DDPM (Ho et al. 2020, eqs. 6–7 and Algorithm 2) on the respaced schedule β' = 1 − ᾱ/ᾱ_prev:
/// x_prev = √ᾱ_prev β'/(1−ᾱ) · x̂₀ + √(1−β') (1−ᾱ_prev)/(1−ᾱ) · x_t + σ z with σ² = β' (0 at the last step).
/// Without clipping this equals Algorithm 2's 1/√α (x_t − β/√(1−ᾱ) ε̂) + σ z; with S = T it is Algorithm 2 exactly.</para>
/// <para>DDIM (Song et al. 2021, eq. 12): x_prev = √ᾱ_prev x̂₀ + √(1−ᾱ_prev−σ²) ε̂ + σ z with
/// σ = η √((1−ᾱ_prev)/(1−ᾱ)) √(1−ᾱ/ᾱ_prev). When x̂₀ is clipped, ε̂ is recomputed from the clipped x̂₀.</para>
/// <para>The state is float32 (it is what the model consumes and the trajectory stores); each update is computed in float64.</para>
/// </remarks>
public sealed class DiffusionSampler
{
    private readonly IDenoiser _denoiser;
    private readonly NoiseSchedule _schedule;

    /// <summary>Creates a sampler from a denoiser and the noise schedule it was trained with.</summary>
    public DiffusionSampler(IDenoiser denoiser, NoiseSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(denoiser);
        ArgumentNullException.ThrowIfNull(schedule);
        _denoiser = denoiser;
        _schedule = schedule;
    }

    /// <summary>Generates one image per seed, all in one batch.</summary>
    /// <param name="seeds">One seed per image (the batch size B).</param>
    /// <param name="options">Sampler, steps, η, clipping, trajectory recording.</param>
    /// <param name="progress">Receives the number of steps done after each step.</param>
    /// <param name="cancellationToken">Checked between steps.</param>
    /// <exception cref="UserInputException">The step count or η is out of range.</exception>
    public SamplingResult Sample(IReadOnlyList<long> seeds, SamplerOptions options, IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(seeds);
        ArgumentNullException.ThrowIfNull(options);
        if (seeds.Count == 0)
        {
            throw new ArgumentException("at least one seed is needed", nameof(seeds));
        }
        int T = _schedule.Timesteps;
        if (options.Steps < 1 || options.Steps > T)
        {
            throw new UserInputException($"sampling steps is {options.Steps}; expected 1..{T} (the schedule's timesteps)");
        }
        if (!(options.Eta >= 0) || double.IsInfinity(options.Eta))
        {
            throw new UserInputException($"DDIM eta is {options.Eta}; expected a finite value ≥ 0");
        }

        int b = seeds.Count, c = _denoiser.Channels, size = _denoiser.ImageSize, d = c * size * size;
        var labels = LabelsOf(options, b);
        var guided = labels is not null && options.Guidance != 1.0 ? new GuidedDenoiser(_denoiser, labels, options.Guidance, d) : null;
        var timesteps = SamplingTimesteps.Evenly(T, options.Steps);
        int steps = timesteps.Length;
        var x = new float[(long)b * d];
        var eps = new float[x.Length];
        var z = new float[d];
        var t = new long[b];
        float[][]? states = options.RecordTrajectory ? new float[b][] : null;
        for (int k = 0; k < b; k++)
        {
            new CounterRng(seeds[k], 0).FillNormal(x.AsSpan(k * d, d));
            if (states is not null)
            {
                states[k] = new float[(long)(steps + 1) * d];
            }
        }

        for (int s = 0; s < steps; s++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            long tNow = timesteps[s];
            if (states is not null)
            {
                for (int k = 0; k < b; k++)
                {
                    x.AsSpan(k * d, d).CopyTo(states[k].AsSpan(s * d, d));
                }
            }
            Array.Fill(t, tNow);
            if (guided is not null)
            {
                guided.Predict(x, t, eps);
            }
            else
            {
                _denoiser.Predict(x, t, labels ?? [], b, eps);
            }

            double ab = _schedule.AlphaBars[tNow];
            double abPrev = s + 1 < steps ? _schedule.AlphaBars[timesteps[s + 1]] : 1.0;
            var step = StepCoefficients.For(options, ab, abPrev);
            for (int k = 0; k < b; k++)
            {
                var xk = x.AsSpan(k * d, d);
                var ek = eps.AsSpan(k * d, d);
                bool noisy = step.Sigma > 0;
                if (noisy)
                {
                    new CounterRng(seeds[k], 1 + s).FillNormal(z);
                }
                for (int i = 0; i < d; i++)
                {
                    xk[i] = (float)step.Apply(xk[i], ek[i], noisy ? z[i] : 0f, options.ClipDenoised);
                }
            }
            progress?.Report(s + 1);
        }

        Trajectory[]? trajectories = null;
        if (states is not null)
        {
            trajectories = new Trajectory[b];
            double eta = options.Kind == SamplerKind.Ddim ? options.Eta : 0.0;
            for (int k = 0; k < b; k++)
            {
                x.AsSpan(k * d, d).CopyTo(states[k].AsSpan(steps * d, d));
                trajectories[k] = new Trajectory(options.Kind, seeds[k], c, size, size, (long[])timesteps.Clone(), states[k], eta, options.ClipDenoised, T);
            }
        }
        return new SamplingResult(x, seeds.ToArray(), c, size, size, timesteps, trajectories);
    }

    /// <summary>Each image's label for a conditional model (checked), null for an unconditional one.</summary>
    /// <exception cref="UserInputException">Labels missing, misplaced, of the wrong count or out of range, or guidance without a null label.</exception>
    private long[]? LabelsOf(SamplerOptions options, int count)
    {
        if (_denoiser.Condition is not { } condition)
        {
            if (options.Labels is not null || options.Guidance != 1.0)
            {
                throw new UserInputException("the model is unconditional: it takes no label and no guidance (leave out --label and --guidance)");
            }
            return null;
        }
        if (options.Labels is not { Count: > 0 } given || (given.Count != 1 && given.Count != count))
        {
            throw new UserInputException(condition.Kind == ConditionKind.Text
                ? $"the model is conditioned on a prompt ({condition.DescribeValues()}): give one prompt for all images, e.g. --prompt \"a dark sneaker\""
                : $"the model is conditioned on a class label (0 … {condition.Classes - 1}): give one label for all images or one per seed ({count}), e.g. --label 3");
        }
        if (!double.IsFinite(options.Guidance) || options.Guidance < 0)
        {
            throw new UserInputException($"guidance is {options.Guidance}; expected a finite value ≥ 0 (1 = the conditional prediction alone)");
        }
        if (options.Guidance != 1.0 && condition.NullLabel is null)
        {
            throw new UserInputException("the model has no null label (model.json condition.nullLabel), so classifier-free guidance cannot run: leave --guidance at 1");
        }
        var labels = new long[count];
        for (int k = 0; k < count; k++)
        {
            labels[k] = condition.RequireValue(given[given.Count == 1 ? 0 : k], "--label");
        }
        return labels;
    }

    /// <summary>Classifier-free guidance: the labels' and the null label's predictions in one batch of 2B, combined.</summary>
    private sealed class GuidedDenoiser(IDenoiser denoiser, long[] labels, double guidance, int length)
    {
        private readonly long[] _both = [.. labels, .. Enumerable.Repeat(denoiser.Condition!.NullLabel!.Value, labels.Length)];
        private readonly long[] _t = new long[2 * labels.Length];
        private readonly float[] _x = new float[2 * labels.Length * length];
        private readonly float[] _eps = new float[2 * labels.Length * length];

        public void Predict(float[] x, long[] t, float[] eps)
        {
            int half = x.Length;
            x.CopyTo(_x, 0);
            x.CopyTo(_x, half);
            t.CopyTo(_t, 0);
            t.CopyTo(_t, t.Length);
            denoiser.Predict(_x, _t, _both, _t.Length, _eps);
            for (int i = 0; i < half; i++)
            {
                double unconditional = _eps[half + i];
                eps[i] = (float)(unconditional + guidance * (_eps[i] - unconditional));
            }
        }
    }

    /// <summary>The per-step constants of one reverse step; see the class remarks for the formulas.</summary>
    private readonly record struct StepCoefficients(SamplerKind Kind, double AlphaBar, double AlphaBarPrev, double Sigma,
        double MeanX0, double MeanXt, double DirEps)
    {
        public static StepCoefficients For(SamplerOptions options, double ab, double abPrev)
        {
            if (options.Kind == SamplerKind.Ddpm)
            {
                double betaPrime = 1 - ab / abPrev;
                double sigma = abPrev < 1.0 ? Math.Sqrt(betaPrime) : 0.0;
                return new(SamplerKind.Ddpm, ab, abPrev, sigma,
                    MeanX0: Math.Sqrt(abPrev) * betaPrime / (1 - ab),
                    MeanXt: Math.Sqrt(1 - betaPrime) * (1 - abPrev) / (1 - ab),
                    DirEps: 0);
            }
            double sigmaDdim = options.Eta * Math.Sqrt((1 - abPrev) / (1 - ab)) * Math.Sqrt(Math.Max(0, 1 - ab / abPrev));
            return new(SamplerKind.Ddim, ab, abPrev, sigmaDdim,
                MeanX0: Math.Sqrt(abPrev),
                MeanXt: 0,
                DirEps: Math.Sqrt(Math.Max(0, 1 - abPrev - sigmaDdim * sigmaDdim)));
        }

        public double Apply(double xt, double eps, double z, bool clip)
        {
            double sa = Math.Sqrt(AlphaBar), s1a = Math.Sqrt(1 - AlphaBar);
            double x0 = (xt - s1a * eps) / sa;
            if (clip)
            {
                double clipped = Math.Clamp(x0, -1.0, 1.0);
                if (Kind == SamplerKind.Ddim && clipped != x0)
                {
                    eps = (xt - sa * clipped) / s1a;
                }
                x0 = clipped;
            }
            return MeanX0 * x0 + MeanXt * xt + DirEps * eps + Sigma * z;
        }
    }
}
