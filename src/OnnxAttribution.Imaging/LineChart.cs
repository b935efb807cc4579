namespace OnnxAttribution.Imaging;

/// <summary>
/// What a line plot shows: one line per series, either over x positions evenly spaced and labelled, or (when every
/// series has its own <see cref="PlotSeries.X"/>) over a numeric x axis, logarithmic with <paramref name="LogX"/>.
/// </summary>
/// <param name="XLabels">The label of each x position; every series without X values has one value per label.</param>
/// <param name="Series">The lines, coloured from <see cref="LinePlot.Palette"/> in order.</param>
/// <param name="XTitle">Text under the x axis, or null.</param>
/// <param name="YTitle">Text above the y axis, or null.</param>
/// <param name="LogX">A numeric x axis in decades (x values must then be positive).</param>
public sealed record LineChart(IReadOnlyList<string> XLabels, IReadOnlyList<PlotSeries> Series, string? XTitle = null, string? YTitle = null, bool LogX = false);
