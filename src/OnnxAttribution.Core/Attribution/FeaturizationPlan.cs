using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// The timesteps and noise draws at which every example (training or query) is measured. By default the fixed
/// timesteps × noise draws, the same for every example, so features are comparable (docs/methods.md, TRAK and D-TRAK); or,
/// with <see cref="RandomTimestepRound"/> set (<see cref="OneRandomTimestep"/>), one random timestep and noise per example,
/// as one training step would draw them (Diffusion-TracIn's training side, Xie et al. 2024).
/// </summary>
/// <param name="Timesteps">Timesteps t (0-based, &lt; T); empty in the one-random-timestep mode.</param>
/// <param name="NoiseDraws">Noise draws per timestep (1 in the one-random-timestep mode).</param>
/// <param name="NoiseSeed">Seed of the draws: draw d at timestep index j is stream j·NoiseDraws + d of <see cref="CounterRng"/>
/// (in the one-random-timestep mode, the key of the per-example draws, see <see cref="ExampleTimestep"/>).</param>
/// <param name="Measurement">The function differentiated.</param>
public sealed record FeaturizationPlan(IReadOnlyList<long> Timesteps, int NoiseDraws, long NoiseSeed, MeasurementKind Measurement)
{
    /// <summary>
    /// Null for fixed timesteps. Otherwise the plan is "one random timestep per example" and this is the round of the draws
    /// (TracIn: the checkpoint index): the rows' timesteps and noise are keyed by (<see cref="NoiseSeed"/>, round, row).
    /// </summary>
    public long? RandomTimestepRound { get; init; }

    /// <summary>
    /// The plan that measures each example at ONE timestep and noise drawn for its dataset row, keyed by
    /// (<paramref name="seed"/>, <paramref name="round"/>, row): the same draws whatever the batch size, sharding or order.
    /// </summary>
    public static FeaturizationPlan OneRandomTimestep(long seed, long round, MeasurementKind measurement)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(round);
        return new FeaturizationPlan([], 1, seed, measurement) { RandomTimestepRound = round };
    }

    /// <summary>K timesteps evenly spaced from 0, as in D-TRAK's code: t = 0, T/K, 2T/K, ….</summary>
    /// <exception cref="UserInputException"><paramref name="count"/> is not in 1..T.</exception>
    public static IReadOnlyList<long> Evenly(int trainTimesteps, int count)
    {
        if (count < 1 || count > trainTimesteps)
        {
            throw new UserInputException($"timesteps {count}: expected 1 to {trainTimesteps} (the model's schedule has T = {trainTimesteps})");
        }
        return Enumerable.Range(0, count).Select(j => (long)j * trainTimesteps / count).ToArray();
    }

    /// <summary>
    /// Whether each pair's gradient is scaled to unit L2 norm before the average over pairs (DAS's public code, Lin et al. 2024),
    /// so that no timestep dominates by the size of its gradient. False (the default) averages the raw gradients.
    /// </summary>
    /// <remarks>The norm is that of the whole per-example gradient, so only the dense projection supports it.</remarks>
    public bool NormalizePairs { get; init; }

    /// <summary>Number of (timestep, draw) pairs each example is measured at.</summary>
    public int Pairs => RandomTimestepRound is null ? Timesteps.Count * NoiseDraws : 1;

    /// <summary>
    /// Null, or the positions of <see cref="Timesteps"/> in the plan they were taken from (<see cref="ForQueries"/>): a pair's
    /// noise is keyed by that position, so a query measured at fewer timesteps sees the very noise the store's rows saw there.
    /// </summary>
    public IReadOnlyList<int>? TimestepPositions { get; init; }

    /// <summary>Fills <paramref name="destination"/> (one example's C·H·W) with the noise of pair (timestep index, draw).</summary>
    public void Noise(int timestepIndex, int draw, Span<float> destination) =>
        new CounterRng(NoiseSeed, (long)(TimestepPositions?[timestepIndex] ?? timestepIndex) * NoiseDraws + draw).FillNormal(destination);

    /// <summary>
    /// The fast query setting: the query measured at <paramref name="count"/> of this plan's K timesteps, spread evenly (positions
    /// ⌊(2j + 1)·K / 2Q⌋, j &lt; Q: the middle one for Q = 1, t = 200 and 700 of 0, 100, …, 900 for Q = 2), each with its own noise.
    /// Its features average fewer gradient passes than the store's rows; what that costs in LDS is measured in docs/results/performance.md (Query latency).
    /// </summary>
    /// <param name="count">Q, from 1 to K; 0 (or K) for the whole plan.</param>
    /// <exception cref="UserInputException">Q is outside 0..K, or the plan draws one random timestep per example.</exception>
    public FeaturizationPlan ForQueries(int count)
    {
        if (count == 0 || (RandomTimestepRound is null && count == Timesteps.Count && TimestepPositions is null))
        {
            return this;
        }
        if (RandomTimestepRound is not null || TimestepPositions is not null)
        {
            throw new UserInputException($"query timesteps {count}: the store's plan does not measure every example at fixed timesteps; leave the setting out");
        }
        int k = Timesteps.Count;
        if (count < 0 || count > k)
        {
            throw new UserInputException($"query timesteps {count}: the store was featurized at {k} timesteps; choose 1 to {k} (0 for all)");
        }
        var positions = Enumerable.Range(0, count).Select(j => (int)((2L * j + 1) * k / (2L * count))).ToArray();
        return this with { Timesteps = positions.Select(i => Timesteps[i]).ToArray(), TimestepPositions = positions };
    }

    /// <summary>The one-random-timestep mode: the timestep of dataset row <paramref name="row"/>, uniform in 0..T−1.</summary>
    /// <remarks>
    /// Uniform element <c>row</c> of <see cref="CounterRng"/>(<see cref="NoiseSeed"/>, stream S) with S = −2⁶³ + 2·round, t = ⌊u·T⌋.
    /// Streams with the top bit set are never used by fixed plans (their streams j·NoiseDraws + d are small and
    /// non-negative), so a training row's draws are independent of a query's even with the same seed.
    /// </remarks>
    public long ExampleTimestep(long row, int trainTimesteps)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfLessThan(trainTimesteps, 1);
        Span<double> u = stackalloc double[1];
        new CounterRng(NoiseSeed, RoundStream(0)).FillUniform(u, row);
        return Math.Min(trainTimesteps - 1, (long)(u[0] * trainTimesteps));
    }

    /// <summary>The one-random-timestep mode: the noise of dataset row <paramref name="row"/> (one example's C·H·W values).</summary>
    /// <remarks>Normal elements row·D … row·D + D − 1 (D = C·H·W) of stream −2⁶³ + 2·round + 1 of <see cref="NoiseSeed"/>.</remarks>
    public void ExampleNoise(long row, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        new CounterRng(NoiseSeed, RoundStream(1)).FillNormal(destination, checked(row * destination.Length));
    }

    private long RoundStream(int purpose) =>
        long.MinValue + 2 * (RandomTimestepRound ?? throw new InvalidOperationException("the plan has fixed timesteps: no per-example draws")) + purpose;

    /// <summary>Checks the plan against a schedule.</summary>
    /// <exception cref="UserInputException">A timestep is out of range or there are no draws.</exception>
    public void Validate(NoiseSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        if (RandomTimestepRound is not null)
        {
            if (Timesteps.Count != 0 || NoiseDraws != 1 || RandomTimestepRound < 0)
            {
                throw new UserInputException($"a one-random-timestep plan has no fixed timesteps, one draw and a non-negative round (got {Timesteps.Count}, {NoiseDraws}, {RandomTimestepRound})");
            }
            return;
        }
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
