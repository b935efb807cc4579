using OnnxAttribution.Runtime.Models;

namespace OnnxAttribution.Runtime;

/// <summary>A noise-prediction network ε̂(x_t, t) or ε̂(x_t, t, y): the seam between samplers and a model runtime.</summary>
public interface IDenoiser
{
    /// <summary>C of the images the model takes.</summary>
    int Channels { get; }

    /// <summary>H = W of the images the model takes.</summary>
    int ImageSize { get; }

    /// <summary>The condition the model takes, or null for an unconditional model.</summary>
    ConditionSpec? Condition => null;

    /// <summary>Predicts the noise for a batch of an unconditional model.</summary>
    /// <param name="xt">The noisy images, [batch, C, H, W] row-major.</param>
    /// <param name="t">The timestep of each image, 0-based (index t is the paper's t + 1), [batch].</param>
    /// <param name="batch">The number of images.</param>
    /// <param name="eps">Receives ε̂, [batch, C, H, W].</param>
    void Predict(ReadOnlySpan<float> xt, ReadOnlySpan<long> t, int batch, Span<float> eps);

    /// <summary>Predicts the noise for a batch, each image with its condition value (<see cref="ConditionSpec"/>).</summary>
    /// <param name="xt">The noisy images, [batch, C, H, W] row-major.</param>
    /// <param name="t">The timestep of each image, [batch].</param>
    /// <param name="conditions">One condition value per image for a conditional model; empty for an unconditional one.</param>
    /// <param name="batch">The number of images.</param>
    /// <param name="eps">Receives ε̂, [batch, C, H, W].</param>
    /// <exception cref="ArgumentException">Conditions given to an unconditional model (this default implementation).</exception>
    void Predict(ReadOnlySpan<float> xt, ReadOnlySpan<long> t, ReadOnlySpan<long> conditions, int batch, Span<float> eps)
    {
        if (!conditions.IsEmpty)
        {
            throw new ArgumentException("this denoiser takes no condition", nameof(conditions));
        }
        Predict(xt, t, batch, eps);
    }
}
