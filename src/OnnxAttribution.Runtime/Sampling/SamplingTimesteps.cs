namespace OnnxAttribution.Runtime.Sampling;

/// <summary>The timesteps a sampler visits.</summary>
public static class SamplingTimesteps
{
    /// <summary>
    /// <paramref name="steps"/> evenly spaced timesteps out of <paramref name="trainTimesteps"/>, in sampling order
    /// (descending): τ_i = ⌊i·T/S⌋ − 1 for i = S..1. The first is always T − 1 (pure noise), and S = T gives every timestep.
    /// </summary>
    /// <remarks>This is the "trailing" spacing of Lin et al. 2024 ("Common diffusion noise schedules and sample steps are flawed", Table 2).</remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="steps"/> is not in 1..T.</exception>
    public static long[] Evenly(int trainTimesteps, int steps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(trainTimesteps, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(steps, trainTimesteps);
        var result = new long[steps];
        for (int k = 0; k < steps; k++)
        {
            int i = steps - k; // S..1
            result[k] = (long)i * trainTimesteps / steps - 1;
        }
        return result;
    }
}
