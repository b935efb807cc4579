namespace OnnxAttribution.Imaging.Tests;

public sealed class PixelScaleTests
{
    [Test]
    public void UnitToByte_RoundTripsEveryByte()
    {
        for (int v = 0; v < 256; v++)
        {
            Assert.That(PixelScale.UnitToByte(PixelScale.ByteToUnit((byte)v)), Is.EqualTo(v));
        }
        Assert.That(PixelScale.UnitToByte(-3f), Is.EqualTo(0));
        Assert.That(PixelScale.UnitToByte(7f), Is.EqualTo(255));
    }
}
