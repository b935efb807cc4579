using OnnxAttribution.Core.Models;
using OnnxAttribution.Core.Runtime;
using OnnxAttribution.Core.Sampling;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// Query images generated from seeds, as <c>generate</c> makes them, each with its sampling trajectory (the methods that
/// attribute steps of the trajectory read it). Labels are "seed N".
/// </summary>
public static class GeneratedQueries
{
    /// <summary>Generates one query per seed with the model's forward graph (a session opened for this call only).</summary>
    /// <exception cref="ModelFileException">The model's forward graph is missing.</exception>
    /// <exception cref="UserInputException">The step count is out of range for the model's schedule.</exception>
    public static List<AttributionQuery> Generate(ModelDirectory model, IReadOnlyList<long> seeds, SamplerKind sampler, int steps, SessionSettings session, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var denoiser = model.OpenDenoiser(session);
        return Generate(denoiser, model.CreateSchedule(), seeds, sampler, steps, cancel);
    }

    /// <summary>
    /// Generates one query per seed with an open denoiser (a caller that generates often keeps one open). All seeds are
    /// sampled as one batch; the images are the same as one seed at a time.
    /// </summary>
    /// <exception cref="UserInputException">The step count is out of range for <paramref name="schedule"/>.</exception>
    public static List<AttributionQuery> Generate(IDenoiser denoiser, NoiseSchedule schedule, IReadOnlyList<long> seeds, SamplerKind sampler, int steps, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(denoiser);
        ArgumentNullException.ThrowIfNull(seeds);
        var result = new DiffusionSampler(denoiser, schedule).Sample(seeds, new SamplerOptions(sampler, steps, RecordTrajectory: true), null, cancel);
        int d = denoiser.Channels * denoiser.ImageSize * denoiser.ImageSize;
        return seeds.Select((seed, q) => new AttributionQuery($"seed {seed}", result.Images.AsSpan(q * d, d).ToArray(), result.Trajectories?[q])).ToList();
    }
}
