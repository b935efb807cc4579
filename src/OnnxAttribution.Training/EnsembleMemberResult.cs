namespace OnnxAttribution.Training;

/// <summary>What one member of a run did.</summary>
/// <param name="Member">The member (0-based).</param>
/// <param name="Rows">The training rows it saw.</param>
/// <param name="Trained">False when it was already complete and skipped.</param>
/// <param name="FinalLoss">Its final loss (NaN when skipped or resumed at its end).</param>
/// <param name="Seconds">Wall time of its training and export in this process.</param>
/// <param name="Bytes">The size of its model folder.</param>
public sealed record EnsembleMemberResult(int Member, int Rows, bool Trained, double FinalLoss, double Seconds, long Bytes);
