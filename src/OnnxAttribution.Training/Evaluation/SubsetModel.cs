namespace OnnxAttribution.Training.Evaluation;

/// <summary>One retrained model of an LDS evaluation: subset j trained with seed number s.</summary>
/// <param name="Subset">j, the subset's index.</param>
/// <param name="SeedIndex">s, which of the subset's S training seeds.</param>
/// <param name="TrainingSeed">The seed its training runs with (<see cref="SubsetModels.TrainingSeed"/>).</param>
/// <param name="Directory">Its model folder.</param>
/// <param name="RunDirectory">Its training run (checkpoints, run.json).</param>
public sealed record SubsetModel(int Subset, int SeedIndex, long TrainingSeed, string Directory, string RunDirectory);
