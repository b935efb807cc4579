using System.Globalization;
using SkiaSharp;

namespace OnnxAttribution.Imaging;

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

    /// <summary>The series colours, in order (Tableau 10); series i gets colour i mod 10, drawn dashed from the eleventh series on.</summary>
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
        if (Numeric(chart))
        {
            foreach (var s in chart.Series)
            {
                if (s.X!.Count != s.Values.Count || (chart.LogX && s.X.Any(x => !(x > 0))))
                {
                    throw new ArgumentException($"series '{s.Label}' has {s.Values.Count} values for {s.X.Count} x values{(chart.LogX ? " (a log axis needs positive x)" : "")}", nameof(chart));
                }
            }
            return;
        }
        if (chart.XLabels.Count < 1)
        {
            throw new ArgumentException("a line chart needs at least one x position", nameof(chart));
        }
        foreach (var s in chart.Series)
        {
            if (s.X is not null)
            {
                throw new ArgumentException($"series '{s.Label}' has x values and another has none: give every series its x values or none", nameof(chart));
            }
            if (s.Values.Count != chart.XLabels.Count)
            {
                throw new ArgumentException($"series '{s.Label}' has {s.Values.Count} values for {chart.XLabels.Count} x positions", nameof(chart));
            }
        }
    }

    /// <summary>Whether the chart has a numeric x axis: it has series and each has its own x values.</summary>
    private static bool Numeric(LineChart chart) => chart.Series.Count > 0 && chart.Series.All(s => s.X is not null);

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
        bool numeric = Numeric(chart);
        var axis = numeric ? XAxis.Of(chart) : null;
        int n = numeric ? 0 : chart.XLabels.Count;
        float X(int i) => n == 1 ? plot.MidX : plot.Left + 8 + i * (plot.Width - 16) / (n - 1);
        float XAt(PlotSeries s, int i) => numeric ? plot.Left + 8 + (float)axis!.Fraction(s.X![i]) * (plot.Width - 16) : X(i);

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
        if (axis is not null)
        {
            foreach (var (value, label) in axis.Ticks())
            {
                float x = plot.Left + 8 + (float)axis.Fraction(value) * (plot.Width - 16);
                canvas.DrawLine(x, plot.Top, x, plot.Bottom, gridPaint);
                canvas.DrawLine(x, plot.Bottom, x, plot.Bottom + 4, axisPaint);
                if (font is not null)
                {
                    canvas.DrawText(label, x, plot.Bottom + 6 + FontSize, SKTextAlign.Center, font, text);
                }
            }
        }
        // Label every x position, or as many as fit without overlapping.
        int every = font is null || n == 0 ? 1 : Math.Max(1, (int)Math.Ceiling(chart.XLabels.Max(l => font.MeasureText(l) + 6) / Math.Max(1f, (plot.Width - 16) / Math.Max(1, n - 1))));
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

        DrawLines(canvas, plot, chart, XAt, Y, font, text);
    }

    /// <summary>Each series' line and point markers at (<paramref name="x"/>, <paramref name="y"/>), and its legend entry right of the plot.</summary>
    private static void DrawLines(SKCanvas canvas, SKRect plot, LineChart chart, Func<PlotSeries, int, float> x, Func<double, float> y, SKFont? font, SKPaint text)
    {
        bool numeric = Numeric(chart);
        for (int k = 0; k < chart.Series.Count; k++)
        {
            var (r, g, b) = Palette[k % Palette.Count];
            using var line = new SKPaint { Color = new SKColor(r, g, b), StrokeWidth = 2.5f, IsAntialias = true, Style = SKPaintStyle.Stroke, StrokeJoin = SKStrokeJoin.Round };
            // A second round of the palette is dashed, so two series never look alike.
            using var dash = k >= Palette.Count ? SKPathEffect.CreateDash([7f, 5f], 0) : null;
            line.PathEffect = dash;
            using var dot = new SKPaint { Color = new SKColor(r, g, b), IsAntialias = true, Style = SKPaintStyle.Fill };
            var series = chart.Series[k];
            var v = series.Values;
            for (int i = 0; i < v.Count; i++)
            {
                if (!double.IsFinite(v[i]) || (numeric && !double.IsFinite(series.X![i])))
                {
                    continue;
                }
                if (i + 1 < v.Count && double.IsFinite(v[i + 1]) && (!numeric || double.IsFinite(series.X![i + 1])))
                {
                    canvas.DrawLine(x(series, i), y(v[i]), x(series, i + 1), y(v[i + 1]), line);
                }
                canvas.DrawCircle(x(series, i), y(v[i]), 3.5f, dot);
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

    /// <summary>A numeric x axis: the range of every series' finite x values (in log10 for a log axis) and its ticks.</summary>
    private sealed class XAxis
    {
        private readonly bool _log;
        private readonly double _lo;
        private readonly double _hi;

        private XAxis(bool log, double lo, double hi) => (_log, _lo, _hi) = (log, lo, hi);

        public static XAxis Of(LineChart chart)
        {
            var xs = chart.Series.SelectMany(s => s.X!).Where(double.IsFinite).Select(x => chart.LogX ? Math.Log10(x) : x).ToList();
            double lo = xs.Count > 0 ? xs.Min() : 0, hi = xs.Count > 0 ? xs.Max() : 1;
            double pad = hi - lo < 1e-12 ? (chart.LogX ? 0.5 : Math.Max(Math.Abs(hi) * 0.1, 1e-6)) : 0.05 * (hi - lo);
            return new XAxis(chart.LogX, lo - pad, hi + pad);
        }

        /// <summary>Where <paramref name="x"/> falls, 0 at the left end to 1 at the right.</summary>
        public double Fraction(double x) => ((_log ? Math.Log10(x) : x) - _lo) / (_hi - _lo);

        /// <summary>Ticks inside the range: 1, 2 and 5 × 10ⁿ on a log axis (decades only when they are many), else nice steps.</summary>
        public IEnumerable<(double Value, string Label)> Ticks()
        {
            if (!_log)
            {
                double step = NiceStep((_hi - _lo) / 5);
                for (double t = Math.Ceiling(_lo / step) * step; t <= _hi; t += step)
                {
                    yield return (t, Math.Abs(t) < step * 1e-6 ? "0" : t.ToString("G3", CultureInfo.InvariantCulture));
                }
                yield break;
            }
            double[] mantissas = _hi - _lo > 3 ? [1] : [1, 2, 5];
            for (int e = (int)Math.Floor(_lo); e <= (int)Math.Ceiling(_hi); e++)
            {
                foreach (double m in mantissas)
                {
                    double value = m * Math.Pow(10, e);
                    double position = Math.Log10(value);
                    if (position >= _lo && position <= _hi)
                    {
                        yield return (value, value.ToString(value is >= 1e-3 and < 1e6 ? "0.###" : "0e0", CultureInfo.InvariantCulture));
                    }
                }
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
