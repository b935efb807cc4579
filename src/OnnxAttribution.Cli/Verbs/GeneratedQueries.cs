using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Runtime;
using OnnxAttribution.Core.Sampling;

namespace OnnxAttribution.Cli.Verbs;

/// <summary>Query images generated from seeds, as 'generate' makes them, with their trajectories.</summary>
internal static class GeneratedQueries
{
    public static List<AttributionQuery> Generate(ModelDirectory model, IReadOnlyList<long> seeds, SamplerKind sampler, int steps, SessionSettings session, CancellationToken cancel)
    {
        using var denoiser = model.OpenDenoiser(session);
        var result = new DiffusionSampler(denoiser, model.CreateSchedule()).Sample(seeds, new SamplerOptions(sampler, steps, RecordTrajectory: true), null, cancel);
        int d = model.Metadata.Channels * model.Metadata.ImageSize * model.Metadata.ImageSize;
        return seeds.Select((seed, q) => new AttributionQuery($"seed {seed}", result.Images.AsSpan(q * d, d).ToArray(), result.Trajectories?[q])).ToList();
    }
}
