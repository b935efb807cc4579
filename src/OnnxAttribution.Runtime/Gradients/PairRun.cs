namespace OnnxAttribution.Runtime.Gradients;

/// <summary>
/// One run's (t, ε) pairs of one example, as the inputs of <see cref="ReducedGradientGraph"/>: n timesteps, n·C·H·W noise
/// values, √ᾱ_t and √(1−ᾱ_t) per pair (float32, as the host forms x_t), and each pair's weight in the example's sum.
/// </summary>
public sealed record PairRun(long[] Timesteps, float[] Noise, float[] SignalScales, float[] NoiseScales, float[] Weights)
{
    /// <summary>n.</summary>
    public int Count => Timesteps.Length;
}
