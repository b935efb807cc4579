using OnnxAttribution.Core.Data;
using OnnxAttribution.Imaging;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Tests.Data;

public sealed class PngFolderTests : TempDirectoryTest
{
    [Test]
    public void Read_Folder_SortedByNameWithOneGeometry()
    {
        PngImage.Write(Path.Combine(TempDir, "img10.png"), [1f, 1f], 1, 1, 2);
        PngImage.Write(Path.Combine(TempDir, "img02.png"), [0f, 0f], 1, 1, 2);
        File.WriteAllText(Path.Combine(TempDir, "notes.txt"), "not an image");
        var ds = PngFolder.Read(TempDir, "mine");
        Assert.That((ds.Count, ds.Channels, ds.Height, ds.Width, ds.Name), Is.EqualTo((2, 1, 1, 2, "mine")));
        Assert.That(ds.Image(1).ToArray(), Is.All.EqualTo(1f));
    }

    [Test]
    public void Read_DifferentSize_NamesOffendingFile()
    {
        PngImage.Write(Path.Combine(TempDir, "a.png"), [1f, 1f], 1, 1, 2);
        PngImage.Write(Path.Combine(TempDir, "b.png"), [1f, 1f, 1f], 1, 1, 3);
        Assert.That(() => PngFolder.Read(TempDir),
            Throws.TypeOf<UserInputException>().With.Message.Contains("b.png").And.Message.Contains("one size"));
    }

    [Test]
    public void Read_MixedGrayAndRgb_NamesOffendingFile()
    {
        PngImage.Write(Path.Combine(TempDir, "a.png"), [1f], 1, 1, 1);
        PngImage.Write(Path.Combine(TempDir, "b.png"), [1f, 0f, 0f], 3, 1, 1);
        Assert.That(() => PngFolder.Read(TempDir), Throws.TypeOf<UserInputException>().With.Message.Contains("b.png"));
    }

    [Test]
    public void Read_EmptyFolder_Throws()
    {
        Assert.That(() => PngFolder.Read(TempDir), Throws.TypeOf<UserInputException>().With.Message.Contains("no .png"));
    }
}
