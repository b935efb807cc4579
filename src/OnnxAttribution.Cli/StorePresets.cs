using OnnxAttribution.Store;

namespace OnnxAttribution.Cli;

/// <summary>A named store setting of <c>featurize --preset</c>.</summary>
internal enum StorePreset
{
    /// <summary>One timestep (t = 0), k = 1024, float16 rows: the 25 ms query setting.</summary>
    Fast,

    /// <summary>Ten timesteps, k = 4096, float32 rows.</summary>
    Default,

    /// <summary>Thirty timesteps, k = 4096, float32 rows.</summary>
    Quality,
}

/// <summary>
/// What each <see cref="StorePreset"/> sets. Their LDS, build cost and query latency, measured on three benchmarks, are in
/// docs/results/presets.md.
/// </summary>
internal static class StorePresets
{
    /// <summary>The preset's timesteps K, feature dimension k and row type.</summary>
    public static (int Timesteps, int Dim, StoreDType DType) Of(StorePreset preset) => preset switch
    {
        StorePreset.Fast => (1, 1024, StoreDType.Float16),
        StorePreset.Quality => (30, 4096, StoreDType.Float32),
        _ => (10, 4096, StoreDType.Float32),
    };
}
