namespace OnnxAttribution.Runtime.Models;

/// <summary>
/// Which training checkpoint a model folder holds: the raw (non-EMA) weights after <paramref name="Step"/> optimizer steps,
/// and the learning rate of the step taken from them (TracIn's η_c, Pruthi et al. 2020, Eq. 3; Xie et al. 2024).
/// </summary>
/// <param name="Step">Optimizer steps done when the weights were saved.</param>
/// <param name="LearningRate">The learning rate the trainer applies to the next step (warm-up included).</param>
public sealed record CheckpointInfo(int Step, double LearningRate);
