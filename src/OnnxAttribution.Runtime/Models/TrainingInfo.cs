namespace OnnxAttribution.Runtime.Models;

/// <summary>How the shipped model was trained: enough to reproduce it and to judge it.</summary>
public sealed record TrainingInfo(
    string Dataset,
    string Subset,
    int Steps,
    int BatchSize,
    double LearningRate,
    double EmaDecay,
    long Seed,
    double FinalLoss,
    double TrainSeconds);
