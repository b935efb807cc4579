namespace OnnxAttribution.Training;

/// <summary>Progress of a training run.</summary>
/// <param name="Step">Steps done.</param>
/// <param name="TotalSteps">Steps to do in total.</param>
/// <param name="Loss">The mean of the batch losses since the previous report.</param>
/// <param name="ImagesPerSecond">Training throughput since the previous report.</param>
/// <param name="MillisecondsPerStep">Wall time per step since the previous report.</param>
/// <param name="Elapsed">Wall time of this process's part of the run.</param>
public sealed record TrainProgress(int Step, int TotalSteps, double Loss, double ImagesPerSecond, double MillisecondsPerStep, TimeSpan Elapsed);
