using OnnxAttribution.Primitives;
using SkiaSharp;

namespace OnnxAttribution.Imaging.Tests;

public sealed class PngImageTests : TempDirectoryTest
{
    [Test]
    public void WriteThenRead_Grayscale_RoundTripsAt8Bits()
    {
        var img = Enumerable.Range(0, 12).Select(i => i / 5.5f - 1f).ToArray(); // 3×4
        var path = Path.Combine(TempDir, "g.png");
        PngImage.Write(path, img, 1, 3, 4);
        var (px, c, h, w) = PngImage.Read(path);
        Assert.That((c, h, w), Is.EqualTo((1, 3, 4)));
        Assert.That(px, Is.EqualTo(img).Within(1 / 127.5 / 2 + 1e-6));
        using var codec = SKCodec.Create(path);
        Assert.That(codec.Info.ColorType, Is.EqualTo(SKColorType.Gray8), "C = 1 is written as a grayscale PNG");
    }

    [Test]
    public void WriteThenRead_Rgb_KeepsChannelsApart()
    {
        float[] img = [1, -1, -1, -1, /* G */ -1, 1, -1, -1, /* B */ -1, -1, 1, 0]; // 3 channels of 2×2
        var path = Path.Combine(TempDir, "c.png");
        PngImage.Write(path, img, 3, 2, 2);
        var (px, c, _, _) = PngImage.Read(path);
        Assert.That(c, Is.EqualTo(3));
        Assert.That(px, Is.EqualTo(img).Within(0.004));
    }

    [Test]
    public void Write_Scale4_IsNearestUpscale()
    {
        var path = Path.Combine(TempDir, "s.png");
        PngImage.Write(path, [-1f, 1f], 1, 1, 2, scale: 4);
        var (bytes, _, h, w) = PngImage.ReadBytes(path);
        Assert.That((h, w), Is.EqualTo((4, 8)));
        Assert.That(bytes[3], Is.EqualTo(0));
        Assert.That(bytes[4], Is.EqualTo(255));
        Assert.That(bytes[3 * 8 + 7], Is.EqualTo(255));
    }

    [Test]
    public void Read_RgbAsGray_UsesLuma()
    {
        var path = Path.Combine(TempDir, "r.png");
        PngImage.Write(path, [1f, -1f, -1f], 3, 1, 1); // pure red
        var (px, c, _, _) = PngImage.Read(path, channels: 1);
        Assert.That(c, Is.EqualTo(1));
        Assert.That(px[0], Is.EqualTo(0.299 * 255 / 127.5 - 1).Within(1e-5));
    }

    [Test]
    public void Read_GrayAsRgb_Repeats()
    {
        var path = Path.Combine(TempDir, "g.png");
        PngImage.Write(path, [0.5f], 1, 1, 1);
        var (px, c, _, _) = PngImage.Read(path, channels: 3);
        Assert.That(c, Is.EqualTo(3));
        Assert.That(px, Is.All.EqualTo(px[0]));
    }

    [Test]
    public void Read_WithSize_ResizesByAreaAveraging()
    {
        var path = Path.Combine(TempDir, "big.png");
        var img = new float[28 * 28];
        for (int i = 0; i < img.Length; i++)
        {
            img[i] = (i % 28) < 14 ? -1f : 1f;
        }
        PngImage.Write(path, img, 1, 28, 28);
        var (px, _, h, w) = PngImage.Read(path, size: 16);
        Assert.That((h, w), Is.EqualTo((16, 16)));
        Assert.That(px[0], Is.EqualTo(-1f).Within(1e-6));
        Assert.That(px[15], Is.EqualTo(1f).Within(1e-6));
        Assert.That(px.Average(), Is.EqualTo(0).Within(1e-5));
    }

    [Test]
    public void Read_NotAnImage_NamesFile()
    {
        var path = Path.Combine(TempDir, "x.png");
        File.WriteAllText(path, "hello");
        Assert.That(() => PngImage.Read(path), Throws.TypeOf<UserInputException>().With.Message.Contains(path));
    }

    [Test]
    public void ReadEncoded_RgbFileBytes_SameAsReadingTheFile()
    {
        var img = Enumerable.Range(0, 3 * 5 * 4).Select(i => (i % 17) / 8f - 1f).ToArray(); // 3 channels of 5×4
        var path = Path.Combine(TempDir, "c.png");
        PngImage.Write(path, img, 3, 5, 4);
        var fromFile = PngImage.Read(path, channels: 1, size: 3);
        var fromBytes = PngImage.Read(File.ReadAllBytes(path), "the upload", channels: 1, size: 3);
        Assert.That((fromBytes.Channels, fromBytes.Height, fromBytes.Width), Is.EqualTo((fromFile.Channels, fromFile.Height, fromFile.Width)));
        Assert.That(fromBytes.Pixels, Is.EqualTo(fromFile.Pixels));
    }

    [Test]
    public void ReadEncoded_NotAnImage_NamesTheSource()
    {
        Assert.That(() => PngImage.Read("hello"u8, "field 'png'"),
            Throws.TypeOf<UserInputException>().With.Message.Contains("field 'png'"));
    }

    [Test]
    public void ReadEncoded_HeaderDeclaresAHugeImage_RefusedBeforeDecoding()
    {
        // A real 8×8 PNG whose header is rewritten to 100000×100000 (with the header's CRC recomputed): a few hundred bytes
        // that would otherwise ask for 10¹⁰ pixels.
        var path = Path.Combine(TempDir, "small.png");
        PngImage.Write(path, new float[64], 1, 8, 8);
        var bytes = File.ReadAllBytes(path);
        Assert.That(System.Text.Encoding.ASCII.GetString(bytes, 12, 4), Is.EqualTo("IHDR"));
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(16), 100_000);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(20), 100_000);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(29), Crc32(bytes.AsSpan(12, 17)));
        Assert.That(() => PngImage.Read(bytes, "body"),
            Throws.TypeOf<UserInputException>().With.Message.Contains("body").And.Message.Contains("100000×100000"));
    }

    [TestCase(0, 8, "not a readable image")]
    [TestCase(8, 0, "not a readable image")]
    [TestCase(int.MinValue, 8, "body")] // 0x80000000: negative as int32
    [TestCase(-1, -1, "body")]
    public void ReadEncoded_HeaderDeclaresZeroOrNegativeSize_Refused(int width, int height, string expected)
    {
        var path = Path.Combine(TempDir, "small.png");
        PngImage.Write(path, new float[64], 1, 8, 8);
        var bytes = File.ReadAllBytes(path);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(16), width);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(20), height);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(29), Crc32(bytes.AsSpan(12, 17)));
        Assert.That(() => PngImage.Read(bytes, "body"),
            Throws.TypeOf<UserInputException>().With.Message.Contains("body").And.Message.Contains(expected));
    }

    [TestCase(0, "wrong magic")]
    [TestCase(29, "IHDR CRC")]
    [TestCase(24, "bit depth 3")]
    public void ReadEncoded_HeaderBytesDamaged_RefusedNamingTheSource(int offset, string what)
    {
        var path = Path.Combine(TempDir, "small.png");
        PngImage.Write(path, new float[64], 1, 8, 8);
        var bytes = File.ReadAllBytes(path);
        bytes[offset] = offset == 24 ? (byte)3 : (byte)(bytes[offset] ^ 0xff);
        Assert.That(() => PngImage.Read(bytes, "body"), Throws.TypeOf<UserInputException>().With.Message.Contains("body"), what);
    }

    [TestCase(0)]
    [TestCase(8)]
    [TestCase(33)]
    public void ReadEncoded_CutShort_RefusedNamingTheSource(int keep)
    {
        var path = Path.Combine(TempDir, "small.png");
        PngImage.Write(path, new float[64], 1, 8, 8);
        var bytes = File.ReadAllBytes(path);
        Assert.That(() => PngImage.Read(bytes.AsSpan(0, keep), "body"), Throws.TypeOf<UserInputException>().With.Message.Contains("body"));
    }

    /// <summary>The PNG chunk CRC (ISO 3309 CRC-32, reflected polynomial 0xEDB88320), bit by bit.</summary>
    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
            }
        }
        return ~crc;
    }

    [Test]
    public void ReadEncoded_Truncated_SaysSo()
    {
        var path = Path.Combine(TempDir, "t.png");
        PngImage.Write(path, Enumerable.Range(0, 64 * 64).Select(i => (i * 7919 % 255) / 127.5f - 1f).ToArray(), 1, 64, 64);
        var bytes = File.ReadAllBytes(path);
        Assert.That(() => PngImage.Read(bytes.AsSpan(0, bytes.Length / 2), "body"),
            Throws.TypeOf<UserInputException>().With.Message.Contains("body").And.Message.Contains("truncated"));
    }
}
