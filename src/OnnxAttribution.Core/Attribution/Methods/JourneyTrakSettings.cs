using OnnxAttribution.Runtime.Projection;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// The settings of Journey-TRAK: <see cref="GradientSettings"/> with the number of sampling steps attributed (each step's
/// store is featurized at its own timestep alone, so the plan's K timesteps are not among them), the projector kind and
/// the damping of each step's kernel.
/// </summary>
public sealed record JourneyTrakSettings : GradientSettings
{
    /// <summary>Only binding makes one (<see cref="MethodSettings"/> holds the defaults).</summary>
    internal JourneyTrakSettings()
    {
    }

    /// <inheritdoc cref="MethodSettings.JourneySteps"/>
    public int JourneySteps { get; init; }

    /// <inheritdoc cref="MethodSettings.Projector"/>
    public ProjectorKind Projector { get; init; }

    /// <inheritdoc cref="MethodSettings.Damping"/>
    public double? Damping { get; init; }
}
