namespace OnnxAttribution.Core.Evaluation;

/// <summary>One split of a subset's training seeds into two disjoint halves of equal size.</summary>
/// <param name="A">Seed indices of half A.</param>
/// <param name="B">Seed indices of half B.</param>
public sealed record SeedSplit(int[] A, int[] B);
