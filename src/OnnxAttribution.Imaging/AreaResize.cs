using System.Diagnostics;

namespace OnnxAttribution.Imaging;

/// <summary>
/// Resizes images by area averaging: output pixel (y, x) is the mean of the source image over the rectangle
/// it covers, each source pixel weighted by the exact area of its overlap (so 28→16, a factor of 1.75, is exact,
/// not a rounded kernel). Separable: the weight of source (j, i) is wy(j)·wx(i).
/// </summary>
/// <remarks>
/// Overlaps are computed in integers (output o covers [o·src, (o+1)·src) in units of 1/dst) and each weight is
/// overlap/src, so the weights of every output pixel sum to 1 up to float64 rounding. Sums run in float64.
/// Enlarging with this rule gives box (nearest-like) interpolation.
/// </remarks>
public sealed class AreaResize
{
    private readonly (int Start, double[] Weights)[] _rows;
    private readonly (int Start, double[] Weights)[] _cols;

    /// <summary>Precomputes the weights that resize <paramref name="sourceHeight"/>×<paramref name="sourceWidth"/> images to <paramref name="height"/>×<paramref name="width"/>.</summary>
    public AreaResize(int sourceHeight, int sourceWidth, int height, int width)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sourceHeight, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(sourceWidth, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        SourceHeight = sourceHeight;
        SourceWidth = sourceWidth;
        Height = height;
        Width = width;
        _rows = Weights(sourceHeight, height);
        _cols = Weights(sourceWidth, width);
    }

    /// <summary>The height of the source images, in pixels.</summary>
    public int SourceHeight { get; }

    /// <summary>The width of the source images, in pixels.</summary>
    public int SourceWidth { get; }

    /// <summary>The height of the resized images, in pixels.</summary>
    public int Height { get; }

    /// <summary>The width of the resized images, in pixels.</summary>
    public int Width { get; }

    /// <summary>The weights of the source indices that output index <paramref name="output"/> covers along one axis.</summary>
    public static (int Start, double[] Weights) AxisWeights(int source, int target, int output)
    {
        long lo = (long)output * source, hi = (long)(output + 1) * source; // in units of 1/target
        int first = (int)(lo / target), last = (int)((hi - 1) / target);
        var w = new double[last - first + 1];
        for (int j = first; j <= last; j++)
        {
            long overlap = Math.Min(hi, (long)(j + 1) * target) - Math.Max(lo, (long)j * target);
            w[j - first] = (double)overlap / source;
        }
        return (first, w);
    }

    /// <summary>Resizes one image of <paramref name="channels"/> planes (CHW) into <paramref name="destination"/> (CHW).</summary>
    public void Apply(ReadOnlySpan<float> source, int channels, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        int srcPlane = SourceHeight * SourceWidth, dstPlane = Height * Width;
        if (source.Length != channels * srcPlane)
        {
            throw new ArgumentException($"expected {channels}×{SourceHeight}×{SourceWidth} = {channels * srcPlane} values, got {source.Length}", nameof(source));
        }
        if (destination.Length != channels * dstPlane)
        {
            throw new ArgumentException($"expected {channels}×{Height}×{Width} = {channels * dstPlane} values, got {destination.Length}", nameof(destination));
        }
        var tmp = new double[SourceHeight * Width]; // rows resized horizontally
        for (int c = 0; c < channels; c++)
        {
            var src = source.Slice(c * srcPlane, srcPlane);
            for (int y = 0; y < SourceHeight; y++)
            {
                for (int x = 0; x < Width; x++)
                {
                    var (start, w) = _cols[x];
                    double sum = 0;
                    for (int k = 0; k < w.Length; k++)
                    {
                        sum += w[k] * src[y * SourceWidth + start + k];
                    }
                    tmp[y * Width + x] = sum;
                }
            }
            var dst = destination.Slice(c * dstPlane, dstPlane);
            for (int y = 0; y < Height; y++)
            {
                var (start, w) = _rows[y];
                for (int x = 0; x < Width; x++)
                {
                    double sum = 0;
                    for (int k = 0; k < w.Length; k++)
                    {
                        sum += w[k] * tmp[(start + k) * Width + x];
                    }
                    dst[y * Width + x] = (float)sum;
                }
            }
        }
    }

    private static (int, double[])[] Weights(int source, int target)
    {
        var result = new (int, double[])[target];
        for (int o = 0; o < target; o++)
        {
            result[o] = AxisWeights(source, target, o);
            Debug.Assert(Math.Abs(result[o].Item2.Sum() - 1) < 1e-12);
        }
        return result;
    }
}
