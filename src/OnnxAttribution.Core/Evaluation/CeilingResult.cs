namespace OnnxAttribution.Core.Evaluation;

/// <summary>The noise ceiling of an LDS benchmark (<see cref="NoiseCeiling.Measure"/>).</summary>
/// <param name="HalfCorrelation">Per query: ρ_half, the Spearman correlation over subsets between the halves' mean losses, averaged over the splits.</param>
/// <param name="Reliability">Per query: ρ_S, ρ_half stepped up to all S seeds by Spearman–Brown.</param>
/// <param name="Ceiling">Per query: √max(ρ_S, 0), the highest LDS the query's measured output allows.</param>
/// <param name="Mean">Mean ceiling over queries with its bootstrap 95% interval.</param>
/// <param name="MeanReliability">Mean ρ_S over queries with its bootstrap 95% interval.</param>
/// <param name="Splits">Number of seed splits averaged.</param>
/// <param name="HalfSize">Seeds in each half, ⌊S/2⌋.</param>
public sealed record CeilingResult(double[] HalfCorrelation, double[] Reliability, double[] Ceiling, Interval Mean, Interval MeanReliability, int Splits, int HalfSize);
