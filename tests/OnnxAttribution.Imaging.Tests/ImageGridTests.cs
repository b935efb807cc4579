namespace OnnxAttribution.Imaging.Tests;

public sealed class ImageGridTests : TempDirectoryTest
{
    [Test]
    public void Write_FiveImagesThreeColumns_HasExpectedSizeAndTiles()
    {
        var images = new float[5 * 4];
        for (int k = 0; k < 5; k++)
        {
            Array.Fill(images, k == 2 ? -1f : 1f, k * 4, 4);
        }
        var path = Path.Combine(TempDir, "grid.png");
        var result = ImageGrid.Write(path, images, 5, 1, 2, 2, new GridLayout(Columns: 3, Scale: 2, Gap: 1));
        Assert.That((result.Width, result.Height), Is.EqualTo((1 + 3 * 5, 1 + 2 * 5)));
        var (bytes, c, h, w) = PngImage.ReadBytes(path);
        Assert.That((c, h, w), Is.EqualTo((3, result.Height, result.Width)));
        int plane = h * w;
        int x = 1 + 2 * 5 + 1, y = 1 + 1; // inside tile 2 (black)
        Assert.That(bytes[y * w + x], Is.EqualTo(0));
        Assert.That(bytes[plane + y * w + x], Is.EqualTo(0));
        Assert.That(bytes[0], Is.EqualTo(255), "the gap is white");
    }

    [Test]
    public void Write_WithCaptions_DrawsTextOrSaysWhy()
    {
        var images = Enumerable.Repeat(1f, 2 * 16 * 16).ToArray(); // two white tiles
        var path = Path.Combine(TempDir, "cap.png");
        var result = ImageGrid.Write(path, images, 2, 1, 16, 16, new GridLayout(Columns: 2, Scale: 2, Gap: 2, FontSize: 12), ["0.931", "-1.2e-3"]);
        Assert.That(result.CaptionsDrawn, Is.True, $"{result.Note} (bash scripts/setup.sh installs fonts-dejavu-core)");
        // Captions sit below the tiles on white: some dark pixels must appear there.
        var (bytes, _, h, w) = PngImage.ReadBytes(path);
        int dark = 0;
        for (int y = 2 + 32; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                dark += bytes[y * w + x] < 128 ? 1 : 0;
            }
        }
        Assert.That(dark, Is.GreaterThan(10));
        Assert.That(h, Is.GreaterThan(2 + 32 + 2));
    }

    [Test]
    public void CanDrawCaptions_ThisMachine_HasAFont()
    {
        // setup.sh installs DejaVu; without it the grids skip their captions with a note, and this test says why.
        Assert.That(File.Exists("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"), Is.True, "no DejaVu font: bash scripts/setup.sh installs fonts-dejavu-core");
        Assert.That(ImageGrid.CanDrawCaptions, Is.True);
    }

    [Test]
    public void Write_CaptionCountMismatch_Throws()
    {
        Assert.That(() => ImageGrid.Write(Path.Combine(TempDir, "x.png"), new float[4], 1, 1, 2, 2, new GridLayout(1), ["a", "b"]),
            Throws.ArgumentException);
    }
}
