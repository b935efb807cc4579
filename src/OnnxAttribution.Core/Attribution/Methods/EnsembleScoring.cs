using System.Text.Json.Serialization;
using OnnxAttribution.Runtime.Models;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// The settings of an ensemble store's scorer (<c>method.json</c>): the fixed plan at which a query's diffusion loss is
/// measured under every member.
/// </summary>
/// <param name="Timesteps">The timesteps t (0-based).</param>
/// <param name="NoiseDraws">Noise draws per timestep.</param>
/// <param name="NoiseSeed">Seed of the draws (<see cref="FeaturizationPlan.Noise"/>).</param>
/// <param name="Members">M, checked against ensemble.json.</param>
/// <param name="BatchSize">(query, pair) evaluations per forward call; never changes a result.</param>
public sealed record EnsembleScoring(IReadOnlyList<long> Timesteps, int NoiseDraws, long NoiseSeed, int Members, int BatchSize = 64)
{
    /// <summary>The default plan: 20 evenly spaced timesteps × 2 draws.</summary>
    public static EnsembleScoring Default(NoiseSchedule schedule, int members, int timesteps = 20, int noiseDraws = 2, long noiseSeed = 0)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        return new(FeaturizationPlan.Evenly(schedule.Timesteps, timesteps), noiseDraws, noiseSeed, members);
    }

    /// <summary>The plan of the query losses: the diffusion loss at these pairs (not written: it repeats the fields).</summary>
    [JsonIgnore]
    public FeaturizationPlan Plan => new(Timesteps, NoiseDraws, NoiseSeed, MeasurementKind.Loss);
}
