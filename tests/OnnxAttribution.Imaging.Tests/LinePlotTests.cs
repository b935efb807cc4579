namespace OnnxAttribution.Imaging.Tests;

public sealed class LinePlotTests : TempDirectoryTest
{
    /// <summary>Pixels of exactly <paramref name="colour"/> left of <paramref name="maxX"/> (the legend lies further right), as (x, y).</summary>
    private static List<(int X, int Y)> PixelsOf((byte R, byte G, byte B) colour, string path, int maxX)
    {
        var (bytes, c, h, w) = PngImage.ReadBytes(path);
        Assert.That(c, Is.EqualTo(3));
        var found = new List<(int, int)>();
        int plane = h * w;
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < Math.Min(w, maxX); x++)
            {
                int i = y * w + x;
                if (bytes[i] == colour.R && bytes[plane + i] == colour.G && bytes[2 * plane + i] == colour.B)
                {
                    found.Add((x, y));
                }
            }
        }
        return found;
    }

    [Test]
    public void Write_RisingAndFallingSeries_EachDrawnInItsColourTheRightWayUp()
    {
        var path = Path.Combine(TempDir, "plot.png");
        var chart = new LineChart(["a", "b", "c", "d", "e"],
            [new PlotSeries("#1", [0, 1, 2, 3, 4]), new PlotSeries("#2", [4, 3, 2, 1, 0])], "step", "score");
        var result = LinePlot.Write(path, chart, 640, 280);
        Assert.That((result.Width, result.Height), Is.EqualTo((640, 280)));

        var rising = PixelsOf(LinePlot.Palette[0], path, 380);
        var falling = PixelsOf(LinePlot.Palette[1], path, 380);
        Assert.That(rising, Has.Count.GreaterThan(50), "the first series' colour");
        Assert.That(falling, Has.Count.GreaterThan(50), "the second series' colour");
        Assert.That(PixelsOf(LinePlot.Palette[2], path, 640), Is.Empty, "no third series");
        // Image y grows downwards: a rising series is higher (smaller y) on the right, a falling one lower.
        static double MeanY(List<(int X, int Y)> p, int from, int to) => p.Where(q => q.X >= from && q.X < to).Average(q => q.Y);
        Assert.That(MeanY(rising, 190, 380), Is.LessThan(MeanY(rising, 0, 190) - 30));
        Assert.That(MeanY(falling, 190, 380), Is.GreaterThan(MeanY(falling, 0, 190) + 30));
    }

    [Test]
    public void Write_ElevenSeries_TheEleventhSharesTheFirstColourButIsDashed()
    {
        var path = Path.Combine(TempDir, "plot.png");
        // Series 0 flat at the bottom, series 10 (the palette's first colour again) flat at the top, the others between.
        var series = Enumerable.Range(0, 11).Select(i => new PlotSeries($"#{i}", [i, i, i, i, i])).ToList();
        LinePlot.Write(path, new LineChart(["a", "b", "c", "d", "e"], series, "step", "value"), 640, 280);

        var first = PixelsOf(LinePlot.Palette[0], path, 380);
        double middle = (first.Min(p => p.Y) + first.Max(p => p.Y)) / 2.0;
        // Along each line's most filled row: the solid line is one run from end to end, the dashed one has gaps.
        static int Gaps(List<(int X, int Y)> pixels)
        {
            int row = pixels.GroupBy(p => p.Y).MaxBy(g => g.Count())!.Key;
            var xs = pixels.Where(p => p.Y == row).Select(p => p.X).Order().ToList();
            return xs.Zip(xs.Skip(1)).Count(pair => pair.Second - pair.First > 1);
        }
        int solidGaps = Gaps(first.Where(p => p.Y > middle).ToList());
        int dashedGaps = Gaps(first.Where(p => p.Y < middle).ToList());
        Assert.That(solidGaps, Is.EqualTo(0), "series 0 is solid");
        Assert.That(dashedGaps, Is.GreaterThan(5), "series 10 is dashed");
    }

    [Test]
    public void Write_SeriesWithTooFewValues_Throws()
    {
        var chart = new LineChart(["a", "b"], [new PlotSeries("#1", [1.0])]);
        Assert.That(() => LinePlot.Write(Path.Combine(TempDir, "x.png"), chart), Throws.ArgumentException.With.Message.Contains("#1"));
    }

    [Test]
    public void Write_LogXAxis_PlacesEachSeriesAtItsOwnXValues()
    {
        // Two series over different x ranges on one log axis 1 … 1000: the first spans the left third (1 … 10), the second
        // the right third (100 … 1000); on an evenly spaced axis both would span the whole width.
        var path = Path.Combine(TempDir, "log.png");
        var chart = new LineChart([], [new PlotSeries("cheap", [1, 2], [1, 10]), new PlotSeries("dear", [2, 1], [100, 1000])], "cost", "LDS", LogX: true);
        LinePlot.Write(path, chart, 640, 280);
        var cheap = PixelsOf(LinePlot.Palette[0], path, 555);
        var dear = PixelsOf(LinePlot.Palette[1], path, 555);
        Assert.That(cheap, Has.Count.GreaterThan(30));
        Assert.That(dear, Has.Count.GreaterThan(30));
        Assert.That(cheap.Max(p => p.X), Is.LessThan(dear.Min(p => p.X)), "the cheap line lies wholly left of the dear one");
        double cheapSpan = cheap.Max(p => p.X) - cheap.Min(p => p.X), dearSpan = dear.Max(p => p.X) - dear.Min(p => p.X);
        Assert.That(cheapSpan, Is.EqualTo(dearSpan).Within(10), "one decade each: equal widths on a log axis");
    }

    [Test]
    public void Write_LogXAxisWithZero_OrSeriesWithAndWithoutX_Throws()
    {
        var zero = new LineChart([], [new PlotSeries("free", [1, 2], [0, 10])], LogX: true);
        Assert.That(() => LinePlot.Write(Path.Combine(TempDir, "z.png"), zero), Throws.ArgumentException.With.Message.Contains("free").And.Message.Contains("positive"));
        var mixed = new LineChart(["a", "b"], [new PlotSeries("one", [1, 2], [1, 2]), new PlotSeries("two", [1, 2])]);
        Assert.That(() => LinePlot.Write(Path.Combine(TempDir, "m.png"), mixed), Throws.ArgumentException.With.Message.Contains("x values"));
    }

    [Test]
    public void GridWrite_WithChart_DrawsTheChartBeneathTheTiles()
    {
        var path = Path.Combine(TempDir, "grid.png");
        var tiles = new float[2 * 4 * 4];
        var chart = new LineChart(["t=9", "t=0"], [new PlotSeries("#3", [1, 2])]);
        var result = ImageGrid.Write(path, tiles, 2, 1, 4, 4, new GridLayout(2, 2), null, chart);
        int gridHeight = 4 + 4 * 2 + 4;
        Assert.That((result.Width, result.Height), Is.EqualTo((480, gridHeight + ImageGrid.ChartHeight)));
        var line = PixelsOf(LinePlot.Palette[0], path, 480);
        Assert.That(line, Has.Count.GreaterThan(20));
        Assert.That(line.Min(p => p.Y), Is.GreaterThanOrEqualTo(gridHeight));
    }
}
