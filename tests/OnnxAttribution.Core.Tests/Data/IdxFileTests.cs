using System.IO.Compression;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Tests.Data;

public sealed class IdxFileTests : TempDirectoryTest
{
    [TestCase(false)]
    [TestCase(true)]
    public void WriteThenRead_ImagesAndLabels_RoundTrip(bool gzip)
    {
        var pixels = Enumerable.Range(0, 3 * 4 * 5).Select(i => (byte)(i * 4)).ToArray();
        var images = Path.Combine(TempDir, "x-images-idx3-ubyte");
        var labels = Path.Combine(TempDir, "x-labels-idx1-ubyte");
        IdxFile.WriteImages(images, 3, 4, 5, pixels, gzip);
        IdxFile.WriteLabels(labels, [7, 0, 9], gzip);
        Assert.That(IdxFile.IsGzip(images), Is.EqualTo(gzip));
        var (n, h, w, read) = IdxFile.ReadImages(images);
        Assert.That((n, h, w), Is.EqualTo((3, 4, 5)));
        Assert.That(read, Is.EqualTo(pixels));
        Assert.That(IdxFile.ReadLabels(labels), Is.EqualTo(new[] { 7, 0, 9 }));
    }

    [Test]
    public void WriteImages_Uncompressed_HasBigEndianHeader()
    {
        var path = Path.Combine(TempDir, "a");
        IdxFile.WriteImages(path, 2, 1, 3, new byte[6], gzip: false);
        var bytes = File.ReadAllBytes(path);
        Assert.That(bytes[..16], Is.EqualTo(new byte[] { 0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3 }));
        Assert.That(bytes, Has.Length.EqualTo(22));
    }

    [Test]
    public void ReadDataset_GzipWithoutGzName_DetectedByMagic()
    {
        var path = Path.Combine(TempDir, "plain-name");
        IdxFile.WriteImages(path, 1, 2, 2, new byte[] { 0, 255, 51, 204 }, gzip: true);
        var ds = IdxFile.ReadDataset(path, null, "t");
        Assert.That(ds.Pixels.ToArray(), Is.EqualTo(new[] { -1f, 1f, -0.6f, 0.6f }).Within(1e-6));
        Assert.That(ds.Labels, Is.Null);
        Assert.That(ds.Channels, Is.EqualTo(1));
    }

    [Test]
    public void ReadImages_BadMagic_NamesFileAndMagic()
    {
        var path = Path.Combine(TempDir, "bad");
        File.WriteAllBytes(path, [1, 2, 8, 3, 0, 0, 0, 0]);
        Assert.That(() => IdxFile.ReadImages(path),
            Throws.TypeOf<UserInputException>().With.Message.Contains(path).And.Message.Contains("01 02"));
    }

    [Test]
    public void ReadImages_LabelFile_SaysDimensionsDiffer()
    {
        var path = Path.Combine(TempDir, "labels");
        IdxFile.WriteLabels(path, [1, 2], gzip: false);
        Assert.That(() => IdxFile.ReadImages(path),
            Throws.TypeOf<UserInputException>().With.Message.Contains("1 dimensions; expected 3"));
    }

    [Test]
    public void ReadImages_NonByteType_NamesTypeCode()
    {
        var path = Path.Combine(TempDir, "float");
        File.WriteAllBytes(path, [0, 0, 0x0D, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
        Assert.That(() => IdxFile.ReadImages(path), Throws.TypeOf<UserInputException>().With.Message.Contains("0x0D"));
    }

    [Test]
    public void ReadImages_Truncated_SaysHowManyBytes()
    {
        var path = Path.Combine(TempDir, "short");
        IdxFile.WriteImages(path, 2, 2, 2, new byte[8], gzip: false);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^3]);
        Assert.That(() => IdxFile.ReadImages(path),
            Throws.TypeOf<UserInputException>().With.Message.Contains("need 8 data bytes but the file ends after 5"));
    }

    [Test]
    public void ReadImages_TrailingBytes_Rejected()
    {
        var path = Path.Combine(TempDir, "long");
        IdxFile.WriteImages(path, 1, 2, 2, new byte[4], gzip: false);
        File.AppendAllText(path, "x");
        Assert.That(() => IdxFile.ReadImages(path), Throws.TypeOf<UserInputException>().With.Message.Contains("more data"));
    }

    [Test]
    public void ReadImages_DamagedGzip_NamesFile()
    {
        var path = Path.Combine(TempDir, "damaged.gz");
        using (var f = File.Create(path))
        using (var gz = new GZipStream(f, CompressionLevel.Fastest))
        {
            gz.Write(new byte[] { 0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 5 });
        }
        var bytes = File.ReadAllBytes(path);
        bytes[12] ^= 0xFF; // inside the deflate stream
        bytes[^8] ^= 0xFF; // and the CRC
        File.WriteAllBytes(path, bytes);
        Assert.That(() => IdxFile.ReadImages(path), Throws.TypeOf<UserInputException>().With.Message.Contains(path));
    }

    [Test]
    public void ReadImages_Missing_NamesFile()
    {
        var path = Path.Combine(TempDir, "nope");
        Assert.That(() => IdxFile.ReadImages(path), Throws.TypeOf<UserInputException>().With.Message.Contains(path));
    }

    [Test]
    public void ReadDataset_LabelCountMismatch_Throws()
    {
        var images = Path.Combine(TempDir, "i");
        var labels = Path.Combine(TempDir, "l");
        IdxFile.WriteImages(images, 2, 1, 1, new byte[2], gzip: false);
        IdxFile.WriteLabels(labels, [1, 2, 3], gzip: false);
        Assert.That(() => IdxFile.ReadDataset(images, labels, "x"),
            Throws.TypeOf<UserInputException>().With.Message.Contains("3 labels"));
    }
}
