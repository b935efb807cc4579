namespace OnnxAttribution.Core.Runtime;

/// <summary>A noise-prediction network ε̂(x_t, t): the seam between samplers and a model runtime.</summary>
public interface IDenoiser
{
    /// <summary>C of the images the model takes.</summary>
    int Channels { get; }

    /// <summary>H = W of the images the model takes.</summary>
    int ImageSize { get; }

    /// <summary>Predicts the noise for a batch.</summary>
    /// <param name="xt">The noisy images, [batch, C, H, W] row-major.</param>
    /// <param name="t">The timestep of each image, 0-based (index t is the paper's t + 1), [batch].</param>
    /// <param name="batch">The number of images.</param>
    /// <param name="eps">Receives ε̂, [batch, C, H, W].</param>
    void Predict(ReadOnlySpan<float> xt, ReadOnlySpan<long> t, int batch, Span<float> eps);
}
