namespace OnnxAttribution.Core.Models;

/// <summary>The kind of β schedule of a DDPM.</summary>
public enum ScheduleKind
{
    /// <summary>β linear from β₁ to β_T (Ho et al. 2020).</summary>
    Linear,

    /// <summary>ᾱ_t = cos²(((t/T)+s)/(1+s)·π/2) normalised, β clipped at 0.999 (Nichol &amp; Dhariwal 2021, eq. 17).</summary>
    Cosine,
}

/// <summary>The settings of a noise schedule, as written in <c>model.json</c>.</summary>
public sealed record ScheduleSettings(ScheduleKind Kind, int Timesteps, double BetaStart = 1e-4, double BetaEnd = 0.02)
{
    /// <summary>
    /// What makes these settings impossible, naming the model.json field, or null when they are valid: no timesteps, an unknown
    /// kind, or a β outside (0, 1) (β = 1 erases the image, β &gt; 1 makes ᾱ negative: the sampler would give black images).
    /// </summary>
    public string? CheckError()
    {
        if (!Enum.IsDefined(Kind))
        {
            return $"field 'schedule.kind': expected linear or cosine, found {Kind}";
        }
        if (Timesteps < 1)
        {
            return $"field 'schedule.timesteps': expected at least 1, found {Timesteps}";
        }
        foreach (var (field, beta) in new[] { ("betaStart", BetaStart), ("betaEnd", BetaEnd) })
        {
            if (!(beta > 0 && beta < 1))
            {
                return $"field 'schedule.{field}': expected a β in (0, 1), found {beta.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
            }
        }
        return null;
    }
}

/// <summary>
/// A DDPM noise schedule in float64: β_t, α_t = 1 − β_t and ᾱ_t = Π α_s, for t = 0..T−1
/// (index t here is the paper's t+1).
/// </summary>
public sealed class NoiseSchedule
{
    /// <summary>Computes the schedule.</summary>
    /// <exception cref="ArgumentException">The settings are invalid (<see cref="ScheduleSettings.CheckError"/>).</exception>
    public NoiseSchedule(ScheduleSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.CheckError() is { } error)
        {
            throw new ArgumentException($"schedule settings: {error}", nameof(settings));
        }
        Settings = settings;
        int T = settings.Timesteps;
        Betas = new double[T];
        if (settings.Kind == ScheduleKind.Linear)
        {
            for (int t = 0; t < T; t++)
            {
                Betas[t] = T == 1 ? settings.BetaStart : settings.BetaStart + (settings.BetaEnd - settings.BetaStart) * t / (T - 1);
            }
        }
        else
        {
            const double s = 0.008;
            static double F(double u) => Math.Pow(Math.Cos((u + s) / (1 + s) * Math.PI / 2), 2);
            for (int t = 0; t < T; t++)
            {
                Betas[t] = Math.Min(1 - F((t + 1.0) / T) / F((double)t / T), 0.999);
            }
        }
        AlphaBars = new double[T];
        double prod = 1;
        for (int t = 0; t < T; t++)
        {
            prod *= 1 - Betas[t];
            AlphaBars[t] = prod;
        }
    }

    /// <summary>The settings the schedule was computed from.</summary>
    public ScheduleSettings Settings { get; }

    /// <summary>T, the number of timesteps.</summary>
    public int Timesteps => Betas.Length;

    /// <summary>β_t for t = 0..T−1.</summary>
    public double[] Betas { get; }

    /// <summary>ᾱ_t = Π_{s ≤ t} α_s for t = 0..T−1.</summary>
    public double[] AlphaBars { get; }

    /// <summary>α_t = 1 − β_t.</summary>
    public double Alpha(int t) => 1 - Betas[t];
}
