using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using OnnxAttribution.Imaging;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Data;

/// <summary>
/// N images of C×H×W float32 pixels in [-1, 1] (NCHW, row-major), with optional integer labels.
/// </summary>
/// <remarks>
/// Pixels read from 8-bit files map v ↦ v/127.5 − 1, so 0 → −1 and 255 → 1.
/// The <see cref="Fingerprint"/> covers the geometry and the float32 pixels, not the labels or the name.
/// </remarks>
public sealed class ImageDataset
{
    private readonly float[] _pixels;
    private readonly int[]? _labels;
    private string? _fingerprint;

    /// <summary>Wraps pixels (not copied) as a dataset.</summary>
    /// <param name="name">A name for messages and metadata, e.g. <c>fashion-mnist-16</c>.</param>
    /// <param name="count">The number of images N.</param>
    /// <param name="channels">C: 1 (grayscale) or 3 (RGB).</param>
    /// <param name="height">H.</param>
    /// <param name="width">W.</param>
    /// <param name="pixels">N·C·H·W values in [-1, 1], NCHW.</param>
    /// <param name="labels">N labels, or null.</param>
    /// <exception cref="ArgumentException">The array lengths do not match the geometry.</exception>
    public ImageDataset(string name, int count, int channels, int height, int width, float[] pixels, int[]? labels = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        long expected = (long)count * channels * height * width;
        if (pixels.LongLength != expected)
        {
            throw new ArgumentException($"dataset '{name}': {count}×{channels}×{height}×{width} needs {expected} pixels, got {pixels.LongLength}", nameof(pixels));
        }
        if (labels is not null && labels.Length != count)
        {
            throw new ArgumentException($"dataset '{name}': {count} images but {labels.Length} labels", nameof(labels));
        }
        Name = name;
        Count = count;
        Channels = channels;
        Height = height;
        Width = width;
        _pixels = pixels;
        _labels = labels;
    }

    /// <summary>A name for messages and metadata, e.g. <c>fashion-mnist-16</c>.</summary>
    public string Name { get; }

    /// <summary>The number of images N.</summary>
    public int Count { get; }

    /// <summary>C, the channels per image (1 for grayscale, 3 for RGB).</summary>
    public int Channels { get; }

    /// <summary>H, the image height in pixels.</summary>
    public int Height { get; }

    /// <summary>W, the image width in pixels.</summary>
    public int Width { get; }

    /// <summary>C·H·W: the number of floats per image.</summary>
    public int ImageLength => Channels * Height * Width;

    /// <summary>All pixels, NCHW. Valid as long as this dataset is alive.</summary>
    public ReadOnlySpan<float> Pixels => _pixels;

    /// <summary>The labels, or null when the dataset has none.</summary>
    public IReadOnlyList<int>? Labels => _labels;

    /// <summary>The pixels of image <paramref name="index"/>, CHW.</summary>
    public ReadOnlySpan<float> Image(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        return _pixels.AsSpan(checked(index * ImageLength), ImageLength);
    }

    /// <summary>
    /// SHA-256 (lowercase hex) of the int32 little-endian N, C, H, W followed by the float32 little-endian pixels.
    /// Computed once, on first use.
    /// </summary>
    public string Fingerprint => _fingerprint ??= ComputeFingerprint();

    /// <summary>Builds a dataset from 8-bit pixels (NCHW), mapping v ↦ v/127.5 − 1.</summary>
    public static ImageDataset FromBytes(string name, int count, int channels, int height, int width, ReadOnlySpan<byte> bytes, int[]? labels = null)
    {
        var pixels = new float[bytes.Length];
        for (int i = 0; i < bytes.Length; i++)
        {
            pixels[i] = PixelScale.ByteToUnit(bytes[i]);
        }
        return new ImageDataset(name, count, channels, height, width, pixels, labels);
    }

    /// <summary>The pixels quantised to 8 bits with <see cref="PixelScale.UnitToByte"/>, NCHW.</summary>
    public byte[] ToBytes()
    {
        var bytes = new byte[_pixels.Length];
        for (int i = 0; i < bytes.Length; i++)
        {
            bytes[i] = PixelScale.UnitToByte(_pixels[i]);
        }
        return bytes;
    }

    /// <summary>A new dataset holding the images at <paramref name="indices"/>, in that order (repeats allowed).</summary>
    /// <exception cref="UserInputException">An index is outside [0, N).</exception>
    public ImageDataset Select(IReadOnlyList<int> indices, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(indices);
        int len = ImageLength;
        var pixels = new float[(long)indices.Count * len];
        int[]? labels = _labels is null ? null : new int[indices.Count];
        for (int k = 0; k < indices.Count; k++)
        {
            int i = indices[k];
            if ((uint)i >= (uint)Count)
            {
                throw new UserInputException($"dataset '{Name}': index {i} is out of range; it has {Count} images (valid 0..{Count - 1})");
            }
            _pixels.AsSpan(i * len, len).CopyTo(pixels.AsSpan(k * len, len));
            if (labels is not null)
            {
                labels[k] = _labels![i];
            }
        }
        return new ImageDataset(name ?? Name, indices.Count, Channels, Height, Width, pixels, labels);
    }

    /// <summary>
    /// This dataset's images followed by <paramref name="other"/>'s, in that order (labels kept only when both have them):
    /// its <see cref="Fingerprint"/> is that of the same images loaded as one dataset.
    /// </summary>
    /// <exception cref="UserInputException">The images differ in channels, height or width.</exception>
    public ImageDataset Concat(ImageDataset other, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.Channels != Channels || other.Height != Height || other.Width != Width)
        {
            throw new UserInputException($"dataset '{other.Name}': its images are {other.Channels}×{other.Height}×{other.Width}, " +
                $"those of '{Name}' {Channels}×{Height}×{Width}; they cannot be rows of one store");
        }
        var pixels = new float[_pixels.LongLength + other._pixels.LongLength];
        _pixels.CopyTo(pixels, 0);
        other._pixels.CopyTo(pixels, _pixels.LongLength);
        int[]? labels = _labels is null || other._labels is null ? null : [.. _labels, .. other._labels];
        return new ImageDataset(name ?? Name, Count + other.Count, Channels, Height, Width, pixels, labels);
    }

    /// <summary>Every image resized to <paramref name="height"/>×<paramref name="width"/> by area averaging (see <see cref="Imaging.AreaResize"/>).</summary>
    public ImageDataset Resize(int height, int width, string? name = null)
    {
        if (height == Height && width == Width)
        {
            return new ImageDataset(name ?? Name, Count, Channels, Height, Width, (float[])_pixels.Clone(), _labels?.ToArray());
        }
        int srcLen = ImageLength, dstLen = Channels * height * width;
        var pixels = new float[(long)Count * dstLen];
        var resizer = new Imaging.AreaResize(Height, Width, height, width);
        for (int i = 0; i < Count; i++)
        {
            resizer.Apply(_pixels.AsSpan(i * srcLen, srcLen), Channels, pixels.AsSpan(i * dstLen, dstLen));
        }
        return new ImageDataset(name ?? Name, Count, Channels, height, width, pixels, _labels?.ToArray());
    }

    private string ComputeFingerprint()
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> header = stackalloc byte[16];
        BinaryPrimitives.WriteInt32LittleEndian(header, Count);
        BinaryPrimitives.WriteInt32LittleEndian(header[4..], Channels);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], Height);
        BinaryPrimitives.WriteInt32LittleEndian(header[12..], Width);
        sha.AppendData(header);
        if (BitConverter.IsLittleEndian)
        {
            sha.AppendData(MemoryMarshal.AsBytes(_pixels.AsSpan()));
        }
        else
        {
            var buf = new byte[4];
            foreach (var p in _pixels)
            {
                BinaryPrimitives.WriteSingleLittleEndian(buf, p);
                sha.AppendData(buf);
            }
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }
}
