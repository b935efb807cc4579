namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>The similarity of the pixel baseline.</summary>
public enum PixelMetric
{
    /// <summary>Cosine similarity of the images as vectors of pixels in [-1, 1].</summary>
    Cosine,

    /// <summary>Negative Euclidean distance −‖q − xᵢ‖.</summary>
    L2,
}
