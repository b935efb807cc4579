namespace OnnxAttribution.Core.Evaluation;

/// <summary>The damping chosen on the validation queries, the sweep behind it and what the test queries gave at it.</summary>
/// <typeparam name="T">The test evaluation's result.</typeparam>
/// <param name="Chosen">The λ with the highest validation LDS.</param>
/// <param name="Sweep">Every λ of the grid with its validation LDS.</param>
/// <param name="Test">The test evaluation, run once at <paramref name="Chosen"/>.</param>
public sealed record TunedResult<T>(double Chosen, IReadOnlyList<DampingPoint> Sweep, T Test);
