namespace OnnxAttribution.Runtime.Models;

/// <summary>The settings of a noise schedule, as written in <c>model.json</c>.</summary>
public sealed record ScheduleSettings(ScheduleKind Kind, int Timesteps, double BetaStart = 1e-4, double BetaEnd = 0.02)
{
    /// <summary>
    /// What makes these settings impossible, naming the model.json field, or null when they are valid: no timesteps, an unknown
    /// kind, or a β outside (0, 1) (β = 1 erases the image, β &gt; 1 makes ᾱ negative: the sampler would give black images).
    /// </summary>
    public string? CheckError()
    {
        if (!Enum.IsDefined(Kind))
        {
            return $"field 'schedule.kind': expected linear or cosine, found {Kind}";
        }
        if (Timesteps < 1)
        {
            return $"field 'schedule.timesteps': expected at least 1, found {Timesteps}";
        }
        foreach (var (field, beta) in new[] { ("betaStart", BetaStart), ("betaEnd", BetaEnd) })
        {
            if (!(beta > 0 && beta < 1))
            {
                return $"field 'schedule.{field}': expected a β in (0, 1), found {beta.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
            }
        }
        return null;
    }
}
