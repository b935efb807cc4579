using System.Globalization;
using SkiaSharp;

namespace OnnxAttribution.Core.Imaging;

/// <summary>One line of a <see cref="LineChart"/>: its legend label and one y value per x position (NaN leaves a gap).</summary>
public sealed record PlotSeries(string Label, IReadOnlyList<double> Values);

/// <summary>What a line plot shows: x positions evenly spaced and labelled, one line per series.</summary>
/// <param name="XLabels">The label of each x position; every series has one value per label.</param>
/// <param name="Series">The lines, coloured from <see cref="LinePlot.Palette"/> in order.</param>
/// <param name="XTitle">Text under the x axis, or null.</param>
/// <param name="YTitle">Text above the y axis, or null.</param>
public sealed record LineChart(IReadOnlyList<string> XLabels, IReadOnlyList<PlotSeries> Series, string? XTitle = null, string? YTitle = null);

/// <summary>
/// Draws a line chart into a raster: axes with tick labels, light grid lines, one coloured line with point markers per
/// series, and a legend on the right.
/// </summary>
/// <remarks>
/// Text needs a font (see <see cref="ImageGrid"/>); without one the chart is drawn without text and the result's note
/// says so. The y range covers every finite value with 5% margin, about five ticks at multiples of 1, 2 or 5 × 10ⁿ.
/// </remarks>
public static class LinePlot
{
    private const float FontSize = 11f;

    /// <summary>The series colours, in order (Tableau 10); series i gets colour i mod 10.</summary>
    public static IReadOnlyList<(byte R, byte G, byte B)> Palette { get; } =
    [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
        (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    ];

    /// <summary>Writes the chart as an RGB PNG of <paramref name="width"/> × <paramref name="height"/> pixels.</summary>
    /// <exception cref="ArgumentException">A series does not have one value per x label.</exception>
    public static GridResult Write(string path, LineChart chart, int width = 640, int height = 280)
    {
        ArgumentNullException.ThrowIfNull(path);
        Check(chart);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 160);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 120);
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColors.White);
            Draw(canvas, new SKRect(0, 0, width, height), chart, ImageGrid.Typeface);
        }
        PngImage.Save(bitmap, path);
        return new GridResult(width, height, ImageGrid.Typeface is not null, ImageGrid.Typeface is null ? ImageGrid.NoFontNote : null);
    }

    /// <summary>Checks that every series has one value per x position.</summary>
    internal static void Check(LineChart chart)
    {
        ArgumentNullException.ThrowIfNull(chart);
        if (chart.XLabels.Count < 1)
        {
            throw new ArgumentException("a line chart needs at least one x position", nameof(chart));
        }
        foreach (var s in chart.Series)
        {
            if (s.Values.Count != chart.XLabels.Count)
            {
                throw new ArgumentException($"series '{s.Label}' has {s.Values.Count} values for {chart.XLabels.Count} x positions", nameof(chart));
            }
        }
    }

    /// <summary>Draws the chart into <paramref name="area"/> of a canvas (the background is left as it is).</summary>
    internal static void Draw(SKCanvas canvas, SKRect area, LineChart chart, SKTypeface? typeface)
    {
        using var font = typeface is null ? null : new SKFont(typeface, FontSize);
        using var text = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        float legendWidth = chart.Series.Count == 0 ? 0 : 16 + 30 + (font is null ? 0 : chart.Series.Max(s => font.MeasureText(s.Label)));
        var plot = new SKRect(
            area.Left + (font is null ? 12 : 58),
            area.Top + (font is null || chart.YTitle is null ? 10 : 24),
            area.Right - 12 - legendWidth,
            area.Bottom - (font is null ? 12 : chart.XTitle is null ? 24 : 40));

        var values = chart.Series.SelectMany(s => s.Values).Where(double.IsFinite).ToList();
        double lo = values.Count > 0 ? values.Min() : 0, hi = values.Count > 0 ? values.Max() : 1;
        if (hi - lo < 1e-12 * Math.Max(1, Math.Abs(hi)))
        {
            double pad = Math.Max(Math.Abs(hi) * 0.1, 1e-6);
            lo -= pad;
            hi += pad;
        }
        double margin = 0.05 * (hi - lo);
        lo -= margin;
        hi += margin;
        float Y(double v) => (float)(plot.Bottom - (v - lo) / (hi - lo) * plot.Height);
        int n = chart.XLabels.Count;
        float X(int i) => n == 1 ? plot.MidX : plot.Left + 8 + i * (plot.Width - 16) / (n - 1);

        using var gridPaint = new SKPaint { Color = new SKColor(225, 225, 225), StrokeWidth = 1 };
        using var axisPaint = new SKPaint { Color = SKColors.Black, StrokeWidth = 1 };
        double step = NiceStep((hi - lo) / 5);
        for (double tick = Math.Ceiling(lo / step) * step; tick <= hi; tick += step)
        {
            float y = Y(tick);
            canvas.DrawLine(plot.Left, y, plot.Right, y, gridPaint);
            canvas.DrawLine(plot.Left - 4, y, plot.Left, y, axisPaint);
            if (font is not null)
            {
                canvas.DrawText(Math.Abs(tick) < step * 1e-6 ? "0" : tick.ToString("G3", CultureInfo.InvariantCulture), plot.Left - 6, y + FontSize / 3, SKTextAlign.Right, font, text);
            }
        }
        if (lo < 0 && hi > 0)
        {
            using var zero = new SKPaint { Color = new SKColor(150, 150, 150), StrokeWidth = 1 };
            canvas.DrawLine(plot.Left, Y(0), plot.Right, Y(0), zero);
        }
        canvas.DrawLine(plot.Left, plot.Top, plot.Left, plot.Bottom, axisPaint);
        canvas.DrawLine(plot.Left, plot.Bottom, plot.Right, plot.Bottom, axisPaint);
        // Label every x position, or as many as fit without overlapping.
        int every = font is null ? 1 : Math.Max(1, (int)Math.Ceiling(chart.XLabels.Max(l => font.MeasureText(l) + 6) / Math.Max(1f, (plot.Width - 16) / Math.Max(1, n - 1))));
        for (int i = 0; i < n; i++)
        {
            canvas.DrawLine(X(i), plot.Bottom, X(i), plot.Bottom + 4, axisPaint);
            if (font is not null && i % every == 0)
            {
                canvas.DrawText(chart.XLabels[i], X(i), plot.Bottom + 6 + FontSize, SKTextAlign.Center, font, text);
            }
        }
        if (font is not null && chart.XTitle is not null)
        {
            canvas.DrawText(chart.XTitle, plot.MidX, plot.Bottom + 8 + 2 * FontSize + 4, SKTextAlign.Center, font, text);
        }
        if (font is not null && chart.YTitle is not null)
        {
            canvas.DrawText(chart.YTitle, area.Left + 6, area.Top + 6 + FontSize, SKTextAlign.Left, font, text);
        }

        for (int k = 0; k < chart.Series.Count; k++)
        {
            var (r, g, b) = Palette[k % Palette.Count];
            using var line = new SKPaint { Color = new SKColor(r, g, b), StrokeWidth = 2.5f, IsAntialias = true, Style = SKPaintStyle.Stroke, StrokeJoin = SKStrokeJoin.Round };
            using var dot = new SKPaint { Color = new SKColor(r, g, b), IsAntialias = true, Style = SKPaintStyle.Fill };
            var v = chart.Series[k].Values;
            for (int i = 0; i < n; i++)
            {
                if (!double.IsFinite(v[i]))
                {
                    continue;
                }
                if (i + 1 < n && double.IsFinite(v[i + 1]))
                {
                    canvas.DrawLine(X(i), Y(v[i]), X(i + 1), Y(v[i + 1]), line);
                }
                canvas.DrawCircle(X(i), Y(v[i]), 3.5f, dot);
            }
            float ly = plot.Top + 8 + k * (FontSize + 6);
            float lx = plot.Right + 16;
            canvas.DrawLine(lx, ly, lx + 22, ly, line);
            if (font is not null)
            {
                canvas.DrawText(chart.Series[k].Label, lx + 28, ly + FontSize / 3, SKTextAlign.Left, font, text);
            }
        }
    }

    /// <summary>The step of 1, 2 or 5 × 10ⁿ nearest to <paramref name="rough"/> (on a log scale).</summary>
    private static double NiceStep(double rough)
    {
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(rough)));
        double f = rough / magnitude;
        return (f < 1.5 ? 1 : f < 3.2 ? 2 : f < 7.1 ? 5 : 10) * magnitude;
    }
}
