using OnnxAttribution.Runtime.Projection;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// The settings of a TRAK feature store as <see cref="TrakMethod.Options(MethodBuildRequest, GradientFeatureSettings, string, MeasurementKind)"/>
/// featurizes it: <see cref="GradientSettings"/> with the plan's K timesteps and the projector kind. The gradient-cosine
/// baseline reads these alone; <see cref="TrakSettings"/> adds the kernel's damping.
/// </summary>
public record GradientFeatureSettings : GradientSettings
{
    /// <summary>Only binding makes one (<see cref="MethodSettings"/> holds the defaults).</summary>
    internal GradientFeatureSettings()
    {
    }

    /// <inheritdoc cref="MethodSettings.Timesteps"/>
    public int Timesteps { get; init; }

    /// <inheritdoc cref="MethodSettings.Projector"/>
    public ProjectorKind Projector { get; init; }
}
