namespace OnnxAttribution.Core.Reporting;

/// <summary>
/// Journey-TRAK's answer at one step of the query's sampling trajectory: the rows that step's scores rank highest (the
/// report's per-step strip shows how the credited training images change from noise to the final image).
/// </summary>
/// <param name="Timestep">The diffusion timestep t of the step.</param>
/// <param name="Rows">Its best rows, best first.</param>
/// <param name="Scores">Their scores at this step.</param>
public sealed record StepRows(long Timestep, IReadOnlyList<long> Rows, IReadOnlyList<float> Scores);
