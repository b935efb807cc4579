using OnnxAttribution.Runtime.Models;

namespace OnnxAttribution.Runtime.Tests.Sampling;

/// <summary>The optimal ε̂ when the data is one point x*: ε̂ = (x_t − √ᾱ x*)/√(1−ᾱ), so x̂₀ = x* exactly.</summary>
internal sealed class PointDenoiser(float[] target, NoiseSchedule schedule, int channels, int size) : IDenoiser
{
    public int Channels => channels;

    public int ImageSize => size;

    public int Calls { get; private set; }

    public void Predict(ReadOnlySpan<float> xt, ReadOnlySpan<long> t, int batch, Span<float> eps)
    {
        Calls++;
        int d = target.Length;
        for (int k = 0; k < batch; k++)
        {
            double ab = schedule.AlphaBars[t[k]];
            for (int i = 0; i < d; i++)
            {
                eps[k * d + i] = (float)((xt[k * d + i] - Math.Sqrt(ab) * target[i]) / Math.Sqrt(1 - ab));
            }
        }
    }
}

/// <summary>The optimal ε̂ for data x₀ ~ N(μ, s²) per pixel: x_t ~ N(√ᾱ μ, ᾱ s² + 1 − ᾱ) and
/// ε̂ = E[ε | x_t] = √(1−ᾱ) (x_t − √ᾱ μ)/(ᾱ s² + 1 − ᾱ).</summary>
internal sealed class GaussianDenoiser(double mean, double variance, NoiseSchedule schedule, int channels, int size) : IDenoiser
{
    public int Channels => channels;

    public int ImageSize => size;

    public void Predict(ReadOnlySpan<float> xt, ReadOnlySpan<long> t, int batch, Span<float> eps)
    {
        int d = channels * size * size;
        for (int k = 0; k < batch; k++)
        {
            double ab = schedule.AlphaBars[t[k]];
            double scale = Math.Sqrt(1 - ab) / (ab * variance + 1 - ab);
            for (int i = 0; i < d; i++)
            {
                eps[k * d + i] = (float)(scale * (xt[k * d + i] - Math.Sqrt(ab) * mean));
            }
        }
    }
}

/// <summary>Always predicts the same ε̂, for checking one step by hand.</summary>
internal sealed class ConstantDenoiser(float value, int channels, int size) : IDenoiser
{
    public int Channels => channels;

    public int ImageSize => size;

    public void Predict(ReadOnlySpan<float> xt, ReadOnlySpan<long> t, int batch, Span<float> eps) => eps.Fill(value);
}
