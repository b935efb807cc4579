using SkiaSharp;

namespace OnnxAttribution.Imaging;

/// <summary>
/// Writes rows × columns of same-size images into one RGB PNG, on a white background, with an optional
/// text caption (a score, an index) under each tile.
/// </summary>
/// <remarks>
/// SkiaSharp's Linux "NoDependencies" native build has no fontconfig, so its default typeface may have no glyphs;
/// captions then use the first font file found among common system paths (DejaVu, Liberation, Noto). If none renders,
/// the grid is written without captions and <see cref="GridResult.Note"/> says so.
/// </remarks>
public static class ImageGrid
{
    private static readonly string[] FontCandidates =
    [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/System/Library/Fonts/Helvetica.ttc",
        "C:\\Windows\\Fonts\\arial.ttf",
    ];

    private static readonly Lazy<SKTypeface?> CaptionTypeface = new(FindTypeface);

    /// <summary>Whether captions can be drawn on this machine.</summary>
    public static bool CanDrawCaptions => CaptionTypeface.Value is not null;

    /// <summary>The typeface for text, or null when no font renders here.</summary>
    internal static SKTypeface? Typeface => CaptionTypeface.Value;

    internal const string NoFontNote = "no font with glyphs was found (SkiaSharp has no default font here); captions left out";

    /// <summary>Height in pixels of a chart drawn beneath a grid.</summary>
    public const int ChartHeight = 280;

    /// <summary>Writes the grid.</summary>
    /// <param name="path">The PNG file.</param>
    /// <param name="images">N images, each C·H·W floats in [-1, 1], concatenated (NCHW).</param>
    /// <param name="count">N.</param>
    /// <param name="channels">1 or 3 (grayscale tiles are drawn gray in the RGB grid).</param>
    /// <param name="height">H of each image.</param>
    /// <param name="width">W of each image.</param>
    /// <param name="layout">Columns, scale, gap, font size.</param>
    /// <param name="captions">N captions (null entries draw nothing), or null for no caption row.</param>
    /// <param name="chart">A line chart drawn beneath the grid (<see cref="ChartHeight"/> pixels high, at least 480 wide), or null.</param>
    public static GridResult Write(string path, ReadOnlySpan<float> images, int count, int channels, int height, int width,
        GridLayout layout, IReadOnlyList<string?>? captions = null, LineChart? chart = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(layout.Columns, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(layout.Scale, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(layout.Gap);
        int len = channels * height * width;
        PngImage.CheckGeometry(len, channels, height, width);
        if (images.Length != (long)count * len)
        {
            throw new ArgumentException($"{count} images of {channels}×{height}×{width} need {(long)count * len} values, got {images.Length}", nameof(images));
        }
        if (captions is not null && captions.Count != count)
        {
            throw new ArgumentException($"{count} images but {captions.Count} captions", nameof(captions));
        }
        if (chart is not null)
        {
            LinePlot.Check(chart);
        }
        var typeface = captions is null && chart is null ? null : CaptionTypeface.Value;
        bool drawCaptions = captions is not null && typeface is not null;
        string? note = (captions is not null || chart is not null) && typeface is null ? NoFontNote : null;

        int cols = Math.Min(layout.Columns, count), rows = (count + cols - 1) / cols;
        int tileW = width * layout.Scale, tileH = height * layout.Scale;
        int captionH = drawCaptions ? (int)Math.Ceiling(layout.FontSize * 1.4f) : 0;
        int gridW = layout.Gap + cols * (tileW + layout.Gap);
        int gridH = layout.Gap + rows * (tileH + captionH + layout.Gap);
        int pictureW = chart is null ? gridW : Math.Max(gridW, 480), pictureH = gridH + (chart is null ? 0 : ChartHeight);

        var grid = new byte[pictureW * pictureH * 4];
        grid.AsSpan().Fill(255); // white background and gaps
        int plane = height * width;
        for (int k = 0; k < count; k++)
        {
            var img = images.Slice(k * len, len);
            int left = layout.Gap + (k % cols) * (tileW + layout.Gap);
            int top = layout.Gap + (k / cols) * (tileH + captionH + layout.Gap);
            for (int y = 0; y < tileH; y++)
            {
                for (int x = 0; x < tileW; x++)
                {
                    int src = (y / layout.Scale) * width + (x / layout.Scale), dst = ((top + y) * pictureW + left + x) * 4;
                    byte r = PixelScale.UnitToByte(img[src]);
                    grid[dst] = r;
                    grid[dst + 1] = channels == 1 ? r : PixelScale.UnitToByte(img[plane + src]);
                    grid[dst + 2] = channels == 1 ? r : PixelScale.UnitToByte(img[2 * plane + src]);
                }
            }
        }
        using var bitmap = new SKBitmap(new SKImageInfo(pictureW, pictureH, SKColorType.Rgba8888, SKAlphaType.Opaque));
        PngImage.CopyInto(bitmap, grid, pictureW * 4);
        if (chart is not null)
        {
            using var canvas = new SKCanvas(bitmap);
            LinePlot.Draw(canvas, new SKRect(0, gridH, pictureW, pictureH), chart, typeface);
            canvas.Flush();
        }
        if (drawCaptions)
        {
            using var canvas = new SKCanvas(bitmap);
            using var font = new SKFont(typeface, layout.FontSize);
            using var textPaint = new SKPaint { Color = SKColors.Black, IsAntialias = true };
            for (int k = 0; k < count; k++)
            {
                if (captions![k] is { Length: > 0 } text)
                {
                    float cx = layout.Gap + (k % cols) * (tileW + layout.Gap) + tileW / 2f;
                    float baseline = layout.Gap + (k / cols) * (tileH + captionH + layout.Gap) + tileH + layout.FontSize;
                    canvas.DrawText(text, cx, baseline, SKTextAlign.Center, font, textPaint);
                }
            }
            canvas.Flush();
        }
        PngImage.Save(bitmap, path);
        return new GridResult(pictureW, pictureH, drawCaptions, note);
    }

    private static SKTypeface? FindTypeface()
    {
        if (Renders(SKTypeface.Default))
        {
            return SKTypeface.Default;
        }
        foreach (var path in FontCandidates)
        {
            if (File.Exists(path) && SKTypeface.FromFile(path) is { } t)
            {
                if (Renders(t))
                {
                    return t;
                }
                t.Dispose();
            }
        }
        return null;
    }

    private static bool Renders(SKTypeface? typeface)
    {
        if (typeface is null)
        {
            return false;
        }
        using var font = new SKFont(typeface, 12);
        return font.ContainsGlyphs("0.123456789-eE");
    }
}
