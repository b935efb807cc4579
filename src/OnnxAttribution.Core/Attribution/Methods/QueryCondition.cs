namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>What a class-conditional model generates queries under: the labels and the classifier-free guidance scale.</summary>
/// <param name="Labels">One label for all queries, or one per seed.</param>
/// <param name="Guidance">The guidance scale w (1: the conditional prediction alone); see <see cref="Runtime.Sampling.SamplerOptions.Guidance"/>.</param>
public sealed record QueryCondition(IReadOnlyList<long> Labels, double Guidance = 1.0);
