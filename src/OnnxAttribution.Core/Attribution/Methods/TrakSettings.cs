namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// The settings of TRAK, D-TRAK and DAS: a feature store's (<see cref="GradientFeatureSettings"/>) and the damping λ of the
/// kernel inverse (ΦᵀΦ + λI)⁻¹.
/// </summary>
public sealed record TrakSettings : GradientFeatureSettings
{
    /// <summary>Only binding makes one (<see cref="MethodSettings"/> holds the defaults).</summary>
    internal TrakSettings()
    {
    }

    /// <inheritdoc cref="MethodSettings.Damping"/>
    public double? Damping { get; init; }
}
