namespace OnnxAttribution.Training;

/// <summary>Settings of a gradient check: which batch sizes and timesteps, and the bars to pass.</summary>
/// <param name="BatchSizes">Batch sizes to run the gradient graph with.</param>
/// <param name="Timesteps">Timesteps, cycled over the examples of each batch (batch 1 runs once per timestep).</param>
/// <param name="Seed">Seed of the random inputs and cotangents.</param>
/// <param name="ForwardTolerance">Bar for max |ε_ORT − ε_torch|.</param>
/// <param name="GradientTolerance">Bar for each layer's max_b ‖g_ORT[b] − g_torch[b]‖∞ / ‖g_torch[b]‖∞.</param>
public sealed record GradientCheckOptions(
    IReadOnlyList<int> BatchSizes,
    IReadOnlyList<long> Timesteps,
    long Seed = 0,
    double ForwardTolerance = 1e-5,
    double GradientTolerance = 1e-4)
{
    public static GradientCheckOptions Default { get; } = new([1, 8], [0, 10, 250, 500, 999]);
}
