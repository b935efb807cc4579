using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime.Sampling;
using OnnxAttribution.Runtime;

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
    /// <param name="model">The model folder.</param>
    /// <param name="seeds">One seed per query.</param>
    /// <param name="sampler">DDIM or DDPM.</param>
    /// <param name="steps">Sampling steps.</param>
    /// <param name="session">ONNX Runtime settings.</param>
    /// <param name="cancel">Checked between steps.</param>
    /// <param name="condition">For a class-conditional model: the labels (one for all or one per seed) and the guidance scale; null otherwise.</param>
    public static List<AttributionQuery> Generate(ModelDirectory model, IReadOnlyList<long> seeds, SamplerKind sampler, int steps, SessionSettings session,
        CancellationToken cancel = default, QueryCondition? condition = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var denoiser = model.OpenDenoiser(session);
        return Generate(denoiser, model.CreateSchedule(), seeds, sampler, steps, cancel, condition);
    }

    /// <summary>
    /// Generates one query per seed with an open denoiser (a caller that generates often keeps one open). All seeds are
    /// sampled as one batch; the images are the same as one seed at a time.
    /// </summary>
    /// <remarks>A conditional model's query carries the label it was generated with (<see cref="AttributionQuery.Condition"/>), and is
    /// attributed under it: its features are gradients of the conditional prediction ε̂(x_t, t, y), whatever the guidance
    /// the image was sampled with (docs/guides/conditional.md says why).</remarks>
    /// <exception cref="UserInputException">The step count is out of range for <paramref name="schedule"/>, or the labels do not fit the model.</exception>
    public static List<AttributionQuery> Generate(IDenoiser denoiser, NoiseSchedule schedule, IReadOnlyList<long> seeds, SamplerKind sampler, int steps,
        CancellationToken cancel = default, QueryCondition? condition = null)
    {
        ArgumentNullException.ThrowIfNull(denoiser);
        ArgumentNullException.ThrowIfNull(seeds);
        var options = new SamplerOptions(sampler, steps, RecordTrajectory: true) { Labels = condition?.Labels, Guidance = condition?.Guidance ?? 1.0 };
        var result = new DiffusionSampler(denoiser, schedule).Sample(seeds, options, null, cancel);
        int d = denoiser.Channels * denoiser.ImageSize * denoiser.ImageSize;
        return seeds.Select((seed, q) => new AttributionQuery($"seed {seed}", result.Images.AsSpan(q * d, d).ToArray(), result.Trajectories?[q])
        {
            Condition = condition is null ? null : condition.Labels[condition.Labels.Count == 1 ? 0 : q],
        }).ToList();
    }
}
