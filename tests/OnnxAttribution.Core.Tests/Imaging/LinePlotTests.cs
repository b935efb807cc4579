using OnnxAttribution.Core.Imaging;

namespace OnnxAttribution.Core.Tests.Imaging;

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
    public void Write_SeriesWithTooFewValues_Throws()
    {
        var chart = new LineChart(["a", "b"], [new PlotSeries("#1", [1.0])]);
        Assert.That(() => LinePlot.Write(Path.Combine(TempDir, "x.png"), chart), Throws.ArgumentException.With.Message.Contains("#1"));
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
