namespace OnnxAttribution.Training;

/// <summary>Progress of an ensemble run, across members.</summary>
/// <param name="Member">The member training (0-based).</param>
/// <param name="Members">M.</param>
/// <param name="Step">Its steps done.</param>
/// <param name="Steps">Its steps in total.</param>
/// <param name="Done">Steps done over all members (finished members count in full).</param>
/// <param name="Total">M × steps.</param>
/// <param name="Loss">The member's mean batch loss since the previous report.</param>
/// <param name="MillisecondsPerStep">Wall time per step since the previous report.</param>
/// <param name="Remaining">The time left at that rate (exports not counted).</param>
public sealed record EnsembleProgress(int Member, int Members, int Step, int Steps, long Done, long Total, double Loss, double MillisecondsPerStep, TimeSpan Remaining);
