using SkiaSharp;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Imaging;

/// <summary>
/// Reads and writes single images as PNG. In memory an image is float32 CHW in [-1, 1], C = 1 (grayscale) or 3 (RGB);
/// on disk 8 bits per channel with v = round((x + 1)·127.5), clamped.
/// </summary>
public static class PngImage
{
    /// <summary>The most pixels an image read here may have (8192²): images are for queries and datasets of small models.</summary>
    public const long MaxPixels = 8192L * 8192;

    /// <summary>Writes a CHW image to a PNG file, grayscale for C = 1 and RGB for C = 3.</summary>
    /// <param name="path">The PNG file to write (its folder is created).</param>
    /// <param name="image">C·H·W values in [-1, 1]; values outside are clamped.</param>
    /// <param name="channels">1 or 3.</param>
    /// <param name="height">H.</param>
    /// <param name="width">W.</param>
    /// <param name="scale">An integer upscaling factor (nearest neighbour), so 16×16 images are visible; 1 keeps the size.</param>
    public static void Write(string path, ReadOnlySpan<float> image, int channels, int height, int width, int scale = 1)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var bitmap = ToBitmap(image, channels, height, width, scale);
        Save(bitmap, path);
    }

    /// <summary>Encodes a CHW image as PNG bytes in memory (for data: URIs and HTTP answers), as <see cref="Write"/> writes a file.</summary>
    /// <param name="image">C·H·W values in [-1, 1]; values outside are clamped.</param>
    /// <param name="channels">1 or 3.</param>
    /// <param name="height">H.</param>
    /// <param name="width">W.</param>
    /// <param name="scale">An integer upscaling factor (nearest neighbour); 1 keeps the size.</param>
    /// <returns>The encoded PNG.</returns>
    /// <exception cref="ArgumentException">The value count is not C·H·W, or C is not 1 or 3.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="scale"/> is below 1.</exception>
    public static byte[] Encode(ReadOnlySpan<float> image, int channels, int height, int width, int scale = 1)
    {
        using var bitmap = ToBitmap(image, channels, height, width, scale);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new AttributionException($"SkiaSharp could not encode a {bitmap.Width}×{bitmap.Height} {bitmap.ColorType} PNG");
        return data.ToArray();
    }

    /// <summary>The image as an 8-bit bitmap (gray or RGBA), upscaled by <paramref name="scale"/>.</summary>
    private static SKBitmap ToBitmap(ReadOnlySpan<float> image, int channels, int height, int width, int scale)
    {
        CheckGeometry(image.Length, channels, height, width);
        ArgumentOutOfRangeException.ThrowIfLessThan(scale, 1);
        int h = height * scale, w = width * scale;
        var colorType = channels == 1 ? SKColorType.Gray8 : SKColorType.Rgba8888;
        var bitmap = new SKBitmap(new SKImageInfo(w, h, colorType, SKAlphaType.Opaque));
        int bpp = channels == 1 ? 1 : 4;
        var pixels = new byte[w * h * bpp];
        int plane = height * width;
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                int src = (y / scale) * width + (x / scale);
                int dst = (y * w + x) * bpp;
                if (channels == 1)
                {
                    pixels[dst] = PixelScale.UnitToByte(image[src]);
                }
                else
                {
                    pixels[dst] = PixelScale.UnitToByte(image[src]);
                    pixels[dst + 1] = PixelScale.UnitToByte(image[plane + src]);
                    pixels[dst + 2] = PixelScale.UnitToByte(image[2 * plane + src]);
                    pixels[dst + 3] = 255;
                }
            }
        }
        CopyInto(bitmap, pixels, w * bpp);
        return bitmap;
    }

    /// <summary>
    /// Reads a PNG (or any format SkiaSharp decodes) as a CHW float image in [-1, 1].
    /// </summary>
    /// <param name="path">The image file.</param>
    /// <param name="channels">1 or 3 to convert to that many channels (RGB → gray by ITU-R BT.601 luma
    /// 0.299 R + 0.587 G + 0.114 B; gray → RGB by repetition), or null to keep the file's own (1 for grayscale files, else 3).</param>
    /// <param name="size">A square size to resize to by area averaging when the file differs, or null to keep the file's size.</param>
    /// <returns>The pixels and geometry. Alpha is ignored (colour values are read unpremultiplied).</returns>
    /// <exception cref="UserInputException">The file is missing or not a decodable image.</exception>
    public static (float[] Pixels, int Channels, int Height, int Width) Read(string path, int? channels = null, int? size = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        CheckChannels(channels);
        return ToUnit(ReadBytes(path), channels, size);
    }

    /// <summary>
    /// Reads an encoded PNG (or any format SkiaSharp decodes) held in memory, as <see cref="Read(string, int?, int?)"/>
    /// reads a file.
    /// </summary>
    /// <param name="encoded">The encoded image, e.g. a PNG file's bytes.</param>
    /// <param name="source">What the bytes are, for error messages (e.g. "field 'png'").</param>
    /// <param name="channels">1 or 3 to convert to, or null to keep the image's own.</param>
    /// <param name="size">A square size to resize to by area averaging, or null to keep the image's size.</param>
    /// <exception cref="UserInputException">The bytes are not a decodable image, or are truncated.</exception>
    public static (float[] Pixels, int Channels, int Height, int Width) Read(ReadOnlySpan<byte> encoded, string source, int? channels = null, int? size = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        CheckChannels(channels);
        using var data = SKData.CreateCopy(encoded);
        using var codec = OpenCodec(data, source);
        return ToUnit(Decode(codec, source), channels, size);
    }

    /// <summary>
    /// The width and height an encoded image declares in its header, read without decoding its pixels (so that a
    /// caller can refuse a small upload that declares a huge image before anything of its size is allocated).
    /// </summary>
    /// <param name="encoded">The encoded image, e.g. a PNG file's bytes.</param>
    /// <param name="source">What the bytes are, for error messages.</param>
    /// <exception cref="UserInputException">The bytes are not a readable image.</exception>
    public static (int Width, int Height) ReadSize(ReadOnlySpan<byte> encoded, string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        using var data = SKData.CreateCopy(encoded);
        using var codec = OpenCodec(data, source);
        return (codec.Info.Width, codec.Info.Height);
    }

    private static SKCodec OpenCodec(SKData data, string source) =>
        SKCodec.Create(data) ?? throw new UserInputException($"{source}: not a readable image (SkiaSharp cannot decode it)");

    private static void CheckChannels(int? channels)
    {
        if (channels is not null and not 1 and not 3)
        {
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be 1 or 3");
        }
    }

    /// <summary>8-bit CHW planes to [-1, 1] floats, converted to <paramref name="channels"/> and resized to <paramref name="size"/>.</summary>
    private static (float[] Pixels, int Channels, int Height, int Width) ToUnit((byte[] Bytes, int Channels, int Height, int Width) decoded, int? channels, int? size)
    {
        var (bytes, c, h, w) = decoded;
        int target = channels ?? c;
        int plane = h * w;
        var pixels = new float[target * plane];
        for (int i = 0; i < plane; i++)
        {
            if (c == target)
            {
                for (int k = 0; k < c; k++)
                {
                    pixels[k * plane + i] = PixelScale.ByteToUnit(bytes[k * plane + i]);
                }
            }
            else if (c == 1)
            {
                float v = PixelScale.ByteToUnit(bytes[i]);
                pixels[i] = pixels[plane + i] = pixels[2 * plane + i] = v;
            }
            else
            {
                double luma = 0.299 * bytes[i] + 0.587 * bytes[plane + i] + 0.114 * bytes[2 * plane + i];
                pixels[i] = (float)(luma / 127.5 - 1.0);
            }
        }
        if (size is { } s && (s != h || s != w))
        {
            var resized = new float[target * s * s];
            new AreaResize(h, w, s, s).Apply(pixels, target, resized);
            return (resized, target, s, s);
        }
        return (pixels, target, h, w);
    }

    /// <summary>Decodes an image file to 8-bit CHW planes: 1 plane for grayscale files, 3 (R, G, B) otherwise.</summary>
    /// <exception cref="UserInputException">The file is missing or not a decodable image.</exception>
    public static (byte[] Pixels, int Channels, int Height, int Width) ReadBytes(string path)
    {
        if (!File.Exists(path))
        {
            throw new UserInputException($"image not found: {path}");
        }
        using var codec = SKCodec.Create(path)
            ?? throw new UserInputException($"{path}: not a readable image (SkiaSharp cannot decode it)");
        return Decode(codec, path);
    }

    /// <summary>Decodes an opened image to 8-bit CHW planes; <paramref name="source"/> names it in errors.</summary>
    private static (byte[] Pixels, int Channels, int Height, int Width) Decode(SKCodec codec, string source)
    {
        var info = codec.Info;
        if ((long)info.Width * info.Height > MaxPixels)
        {
            // Checked on the header, before anything is allocated: a small upload can declare a huge image.
            throw new UserInputException($"{source}: a {info.Width}×{info.Height} image; this reads images of at most {MaxPixels} pixels (8192²)");
        }
        bool gray = info.ColorType == SKColorType.Gray8;
        var decodeInfo = new SKImageInfo(info.Width, info.Height, gray ? SKColorType.Gray8 : SKColorType.Rgba8888, gray ? SKAlphaType.Opaque : SKAlphaType.Unpremul);
        var raw = new byte[decodeInfo.BytesSize];
        unsafe
        {
            fixed (byte* p = raw)
            {
                var result = codec.GetPixels(decodeInfo, (IntPtr)p);
                if (result is not SKCodecResult.Success and not SKCodecResult.IncompleteInput)
                {
                    throw new UserInputException($"{source}: cannot decode the image ({result})");
                }
                if (result == SKCodecResult.IncompleteInput)
                {
                    throw new UserInputException($"{source}: the image data is truncated");
                }
            }
        }
        int h = info.Height, w = info.Width, plane = h * w;
        if (gray)
        {
            var g = new byte[plane];
            for (int y = 0; y < h; y++)
            {
                Array.Copy(raw, y * decodeInfo.RowBytes, g, y * w, w);
            }
            return (g, 1, h, w);
        }
        var rgb = new byte[3 * plane];
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                int src = y * decodeInfo.RowBytes + 4 * x, dst = y * w + x;
                rgb[dst] = raw[src];
                rgb[plane + dst] = raw[src + 1];
                rgb[2 * plane + dst] = raw[src + 2];
            }
        }
        return (rgb, 3, h, w);
    }

    internal static void CheckGeometry(int length, int channels, int height, int width)
    {
        if (channels is not 1 and not 3)
        {
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "images have 1 (grayscale) or 3 (RGB) channels");
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        if (length != channels * height * width)
        {
            throw new ArgumentException($"expected {channels}×{height}×{width} = {channels * height * width} values, got {length}");
        }
    }

    /// <summary>Copies tightly packed rows into a bitmap whose rows may be padded.</summary>
    internal static void CopyInto(SKBitmap bitmap, byte[] packed, int rowLength)
    {
        IntPtr dst = bitmap.GetPixels();
        for (int y = 0; y < bitmap.Height; y++)
        {
            System.Runtime.InteropServices.Marshal.Copy(packed, y * rowLength, dst + y * bitmap.RowBytes, rowLength);
        }
    }

    internal static void Save(SKBitmap bitmap, string path)
    {
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new AttributionException($"{path}: SkiaSharp could not encode a {bitmap.Width}×{bitmap.Height} {bitmap.ColorType} PNG");
        AtomicFile.Write(path, data.SaveTo, data.Size);
    }
}
