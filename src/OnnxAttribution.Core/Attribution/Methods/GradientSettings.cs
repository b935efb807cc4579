using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// What every method that differentiates the model reads from <see cref="MethodSettings"/>: the measurement, the noise
/// draws, the projection's distribution, width and seed, the stored element type and the batch size. A method's settings
/// record derives from it (<see cref="GradientFeatureSettings"/>, <see cref="JourneyTrakSettings"/>, …) and is made only by
/// binding a bag (<see cref="AttributionMethod{TSettings}.Bind"/>), so every value, default included, is the bag's.
/// </summary>
public abstract record GradientSettings
{
    /// <summary>Only binding makes one (<see cref="MethodSettings"/> holds the defaults).</summary>
    private protected GradientSettings()
    {
    }

    /// <inheritdoc cref="MethodSettings.Measurement"/>
    public MeasurementKind? Measurement { get; init; }

    /// <inheritdoc cref="MethodSettings.NoiseDraws"/>
    public int NoiseDraws { get; init; }

    /// <inheritdoc cref="MethodSettings.NoiseSeed"/>
    public long NoiseSeed { get; init; }

    /// <inheritdoc cref="MethodSettings.Distribution"/>
    public ProjectionKind Distribution { get; init; }

    /// <inheritdoc cref="MethodSettings.Dim"/>
    public int Dim { get; init; }

    /// <inheritdoc cref="MethodSettings.ProjectionSeed"/>
    public long ProjectionSeed { get; init; }

    /// <inheritdoc cref="MethodSettings.DType"/>
    public StoreDType DType { get; init; }

    /// <inheritdoc cref="MethodSettings.BatchSize"/>
    public int BatchSize { get; init; }
}
