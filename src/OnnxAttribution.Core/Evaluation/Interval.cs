namespace OnnxAttribution.Core.Evaluation;

/// <summary>A mean with a bootstrap 95% interval.</summary>
/// <param name="Mean">The mean over the items.</param>
/// <param name="Low">2.5th percentile of the bootstrap means.</param>
/// <param name="High">97.5th percentile of the bootstrap means.</param>
/// <param name="Count">Number of items (finite values) averaged.</param>
public readonly record struct Interval(double Mean, double Low, double High, int Count);
