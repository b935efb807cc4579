namespace OnnxAttribution.Runtime.Sampling;

/// <summary>Settings of one sampling run.</summary>
/// <param name="Kind">DDPM or DDIM.</param>
/// <param name="Steps">The number of denoising steps, 1..T; see <see cref="SamplingTimesteps"/> for which timesteps are used.</param>
/// <param name="Eta">DDIM's η: 0 is deterministic DDIM, 1 matches DDPM's posterior variance. Ignored for DDPM.</param>
/// <param name="ClipDenoised">Clip the predicted x̂₀ to [-1, 1] at every step.</param>
/// <param name="RecordTrajectory">Keep every x_t along the way (see <see cref="Trajectory"/>).</param>
public sealed record SamplerOptions(
    SamplerKind Kind = SamplerKind.Ddim,
    int Steps = 50,
    double Eta = 0.0,
    bool ClipDenoised = true,
    bool RecordTrajectory = false)
{
    /// <summary>For a class-conditional model: the label each image is generated with, one per seed or one for all; null for an
    /// unconditional model.</summary>
    public IReadOnlyList<long>? Labels { get; init; }

    /// <summary>
    /// Classifier-free guidance scale w (Ho &amp; Salimans 2022): ε̂ = ε̂(x, ∅) + w·(ε̂(x, y) − ε̂(x, ∅)). 1 (the default) is
    /// the conditional prediction alone, one model run per step; any other value runs the model twice per step (the null
    /// label's prediction beside the label's) and needs a model with a null label.
    /// </summary>
    public double Guidance { get; init; } = 1.0;
}
