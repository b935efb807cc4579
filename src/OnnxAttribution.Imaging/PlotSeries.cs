namespace OnnxAttribution.Imaging;

/// <summary>One line of a <see cref="LineChart"/>: its legend label and its y values (NaN leaves a gap).</summary>
/// <param name="Label">The legend's text.</param>
/// <param name="Values">One y value per x label, or per entry of <paramref name="X"/>.</param>
/// <param name="X">The line's own x values on a numeric axis, in drawing order; null: the chart's evenly spaced labels.</param>
public sealed record PlotSeries(string Label, IReadOnlyList<double> Values, IReadOnlyList<double>? X = null);
