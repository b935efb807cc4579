using OnnxAttribution.Core.Data;

namespace OnnxAttribution.Core.Tests.Data;

public sealed class ImageDatasetTests
{
    [Test]
    public void FromBytes_Extremes_MapToMinusOneAndOne()
    {
        var ds = ImageDataset.FromBytes("d", 1, 1, 1, 3, [0, 255, 128]);
        Assert.That(ds.Pixels.ToArray(), Is.EqualTo(new[] { -1f, 1f, 0.0039215686f }).Within(1e-7));
    }

    [Test]
    public void Fingerprint_SamePixels_SameHash_OtherPixelsOrShape_Differ()
    {
        var a = new ImageDataset("a", 2, 1, 1, 2, [0, 1, 2, 3]);
        var b = new ImageDataset("b", 2, 1, 1, 2, [0, 1, 2, 3], [1, 2]);
        var c = new ImageDataset("c", 2, 1, 1, 2, [0, 1, 2, 3.0001f]);
        var d = new ImageDataset("d", 1, 1, 2, 2, [0, 1, 2, 3]);
        Assert.That(a.Fingerprint, Has.Length.EqualTo(64));
        Assert.That(b.Fingerprint, Is.EqualTo(a.Fingerprint));
        Assert.That(c.Fingerprint, Is.Not.EqualTo(a.Fingerprint));
        Assert.That(d.Fingerprint, Is.Not.EqualTo(a.Fingerprint));
    }

    [Test]
    public void Fingerprint_KnownDataset_MatchesGolden()
    {
        // SHA-256 of int32 LE (1, 1, 1, 2) then float32 LE (-1, 1); computed independently with Python hashlib over those 24 bytes.
        var ds = new ImageDataset("x", 1, 1, 1, 2, [-1f, 1f]);
        Assert.That(ds.Fingerprint, Is.EqualTo(GoldenTinyFingerprint));
    }

    [Test]
    public void Constructor_WrongPixelCount_Throws()
    {
        Assert.That(() => new ImageDataset("d", 2, 1, 2, 2, new float[7]), Throws.ArgumentException.With.Message.Contains("needs 8"));
        Assert.That(() => new ImageDataset("d", 2, 1, 1, 1, new float[2], [1]), Throws.ArgumentException);
    }

    [Test]
    public void Resize_28To16_KeepsLabelsAndGeometry()
    {
        var ds = new ImageDataset("d", 2, 1, 28, 28, Enumerable.Repeat(0.5f, 2 * 784).ToArray(), [3, 4]);
        var r = ds.Resize(16, 16);
        Assert.That((r.Count, r.Channels, r.Height, r.Width), Is.EqualTo((2, 1, 16, 16)));
        Assert.That(r.Labels, Is.EqualTo(new[] { 3, 4 }));
        Assert.That(r.Pixels.ToArray(), Is.All.EqualTo(0.5f).Within(1e-6));
    }

    [Test]
    public void Image_OutOfRange_Throws()
    {
        var ds = new ImageDataset("d", 1, 1, 1, 1, [0f]);
        Assert.That(() => ds.Image(1).ToArray(), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    internal const string GoldenTinyFingerprint = "590b25ea97b54660887dff3a6a35180c78a107f57881e91626420df24bc11e97";
}
