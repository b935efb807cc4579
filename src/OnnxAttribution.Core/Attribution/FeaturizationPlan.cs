using OnnxAttribution.Core.Models;
using OnnxAttribution.Core.Numerics;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// The fixed timesteps and noise draws at which every example (training or query) is measured: the same draws for
/// every example, so features are comparable (METHODS.md, TRAK and D-TRAK).
/// </summary>
/// <param name="Timesteps">Timesteps t (0-based, &lt; T).</param>
/// <param name="NoiseDraws">Noise draws per timestep.</param>
/// <param name="NoiseSeed">Seed of the draws: draw d at timestep index j is stream j·NoiseDraws + d of <see cref="CounterRng"/>.</param>
/// <param name="Measurement">The function differentiated.</param>
public sealed record FeaturizationPlan(IReadOnlyList<long> Timesteps, int NoiseDraws, long NoiseSeed, MeasurementKind Measurement)
{
    /// <summary>K timesteps evenly spaced from 0, as in D-TRAK's code: t = 0, T/K, 2T/K, ….</summary>
    public static IReadOnlyList<long> Evenly(int trainTimesteps, int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, trainTimesteps);
        return Enumerable.Range(0, count).Select(j => (long)j * trainTimesteps / count).ToArray();
    }

    /// <summary>
    /// Whether each pair's gradient is scaled to unit L2 norm before the average over pairs (DAS's public code, Lin et al. 2024),
    /// so that no timestep dominates by the size of its gradient. False (the default) averages the raw gradients.
    /// </summary>
    /// <remarks>The norm is that of the whole per-example gradient, so only the dense projection supports it.</remarks>
    public bool NormalizePairs { get; init; }

    /// <summary>Number of (timestep, draw) pairs each example is measured at.</summary>
    public int Pairs => Timesteps.Count * NoiseDraws;

    /// <summary>Fills <paramref name="destination"/> (one example's C·H·W) with the noise of pair (timestep index, draw).</summary>
    public void Noise(int timestepIndex, int draw, Span<float> destination) =>
        new CounterRng(NoiseSeed, (long)timestepIndex * NoiseDraws + draw).FillNormal(destination);

    /// <summary>Checks the plan against a schedule.</summary>
    /// <exception cref="UserInputException">A timestep is out of range or there are no draws.</exception>
    public void Validate(NoiseSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        if (Timesteps.Count == 0 || NoiseDraws < 1)
        {
            throw new UserInputException($"featurization needs at least one timestep and one noise draw (got {Timesteps.Count} and {NoiseDraws})");
        }
        var outside = Timesteps.Where(t => t < 0 || t >= schedule.Timesteps).ToList();
        if (outside.Count > 0)
        {
            throw new UserInputException($"timestep {outside[0]} is outside 0..{schedule.Timesteps - 1}");
        }
    }
}
