namespace OnnxAttribution.Imaging;

/// <summary>
/// The one mapping between 8-bit pixel values and the model's pixel range [-1, 1], used by every image read and written
/// (PNG, IDX, grids), so that an image saved and read back is the same tensor.
/// </summary>
public static class PixelScale
{
    /// <summary>The 8-bit value v as a float in [-1, 1]: v/127.5 − 1.</summary>
    /// <param name="v">The 8-bit value.</param>
    public static float ByteToUnit(byte v) => (float)(v / 127.5 - 1.0);

    /// <summary>A float in [-1, 1] as the nearest 8-bit value (clamped; halves away from zero).</summary>
    /// <param name="x">The pixel value.</param>
    public static byte UnitToByte(float x)
    {
        double v = Math.Round((x + 1.0) * 127.5, MidpointRounding.AwayFromZero);
        return (byte)Math.Clamp(v, 0, 255);
    }
}
