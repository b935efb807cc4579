namespace OnnxAttribution.Core.Evaluation;

/// <summary>A mean LDS against its permutation null.</summary>
/// <param name="P">One-sided p-value: (1 + #{null means ≥ observed}) / (1 + permutations).</param>
/// <param name="NullLow">2.5th percentile of the null means.</param>
/// <param name="NullHigh">97.5th percentile of the null means.</param>
/// <param name="Permutations">Number of permutations drawn.</param>
public readonly record struct PermutationResult(double P, double NullLow, double NullHigh, int Permutations);
