namespace OnnxAttribution.Runtime.Sampling;

/// <summary>The output of <see cref="DiffusionSampler.Sample"/>.</summary>
/// <param name="Images">The final images x₀, [B, C, H, W].</param>
/// <param name="Seeds">The seed of each image.</param>
/// <param name="Channels">C.</param>
/// <param name="Height">H.</param>
/// <param name="Width">W.</param>
/// <param name="Timesteps">The timesteps visited, in sampling order.</param>
/// <param name="Trajectories">One per image when <see cref="SamplerOptions.RecordTrajectory"/> was set, else null.</param>
public sealed record SamplingResult(float[] Images, long[] Seeds, int Channels, int Height, int Width, long[] Timesteps, IReadOnlyList<Trajectory>? Trajectories)
{
    /// <summary>B, the number of images.</summary>
    public int Count => Seeds.Length;

    /// <summary>Image <paramref name="index"/>, CHW.</summary>
    public ReadOnlySpan<float> Image(int index) =>
        Images.AsSpan(checked(index * Channels * Height * Width), Channels * Height * Width);
}
