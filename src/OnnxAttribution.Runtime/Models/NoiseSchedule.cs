namespace OnnxAttribution.Runtime.Models;

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
