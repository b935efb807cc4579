namespace OnnxAttribution.Runtime.Sampling;

/// <summary>
/// Every state of one image's reverse process: state i (i &lt; S) is the x_t fed to the denoiser at
/// <see cref="Timesteps"/>[i]; state S is the final image x₀.
/// </summary>
public sealed class Trajectory
{
    private readonly long[] _timesteps;
    private readonly float[] _states;

    /// <param name="kind">The sampler.</param>
    /// <param name="seed">The image's seed.</param>
    /// <param name="channels">C.</param>
    /// <param name="height">H.</param>
    /// <param name="width">W.</param>
    /// <param name="timesteps">The S timesteps in sampling order.</param>
    /// <param name="states">(S + 1)·C·H·W floats.</param>
    /// <param name="eta">DDIM's η (0 for DDPM).</param>
    /// <param name="clipDenoised">Whether x̂₀ was clipped.</param>
    /// <param name="trainTimesteps">T of the noise schedule.</param>
    public Trajectory(SamplerKind kind, long seed, int channels, int height, int width, long[] timesteps, float[] states,
        double eta, bool clipDenoised, int trainTimesteps)
    {
        ArgumentNullException.ThrowIfNull(timesteps);
        ArgumentNullException.ThrowIfNull(states);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        long expected = (timesteps.Length + 1L) * channels * height * width;
        if (states.LongLength != expected)
        {
            throw new ArgumentException($"{timesteps.Length} steps of {channels}×{height}×{width} need {expected} state values, got {states.LongLength}", nameof(states));
        }
        Kind = kind;
        Seed = seed;
        Channels = channels;
        Height = height;
        Width = width;
        _timesteps = timesteps;
        _states = states;
        Eta = eta;
        ClipDenoised = clipDenoised;
        TrainTimesteps = trainTimesteps;
    }

    /// <summary>The sampler.</summary>
    public SamplerKind Kind { get; }

    /// <summary>The image's seed.</summary>
    public long Seed { get; }

    /// <summary>C, the channels per image.</summary>
    public int Channels { get; }

    /// <summary>H, the image height in pixels.</summary>
    public int Height { get; }

    /// <summary>W, the image width in pixels.</summary>
    public int Width { get; }

    /// <summary>DDIM's η (0 for DDPM).</summary>
    public double Eta { get; }

    /// <summary>Whether x̂₀ was clipped to [-1, 1] at every step.</summary>
    public bool ClipDenoised { get; }

    /// <summary>T of the schedule the timesteps index.</summary>
    public int TrainTimesteps { get; }

    /// <summary>S, the number of denoising steps.</summary>
    public int Steps => _timesteps.Length;

    /// <summary>S + 1.</summary>
    public int StateCount => _timesteps.Length + 1;

    /// <summary>The timesteps in sampling order (descending).</summary>
    public IReadOnlyList<long> Timesteps => _timesteps;

    /// <summary>All states, [(S + 1), C, H, W]. Valid while this object is alive.</summary>
    public ReadOnlySpan<float> States => _states;

    /// <summary>State <paramref name="index"/> (0..S), CHW.</summary>
    public ReadOnlySpan<float> State(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(index, Steps);
        int len = Channels * Height * Width;
        return _states.AsSpan(checked(index * len), len);
    }

    /// <summary>The final image x₀.</summary>
    public ReadOnlySpan<float> Final => State(Steps);
}
