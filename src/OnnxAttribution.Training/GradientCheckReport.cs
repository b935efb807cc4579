namespace OnnxAttribution.Training;

/// <summary>All cases of a check, with the bars and the verdict.</summary>
public sealed record GradientCheckReport(
    IReadOnlyList<GradientCheckCase> Cases,
    double ForwardTolerance,
    double GradientTolerance)
{
    public bool Passed => Cases.All(c => c.ForwardMaxAbsError <= ForwardTolerance && c.GradientMaxRelativeError <= GradientTolerance);
}
