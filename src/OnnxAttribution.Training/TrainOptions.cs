using OnnxAttribution.Core.Data;

namespace OnnxAttribution.Training;

/// <summary>
/// One DDPM training run (<see cref="DdpmTrainer.Train"/>): what it trains on, the network, how (<see cref="Recipe"/>),
/// its seed and where it keeps its checkpoints.
/// </summary>
public sealed record TrainOptions
{
    /// <summary>The images, NCHW in [-1, 1]; their geometry must match <see cref="Model"/>.</summary>
    public required ImageDataset Data { get; init; }

    /// <summary>The indices of <see cref="Data"/> to train on (the training subset); null for all of them.</summary>
    public IReadOnlyList<int>? Indices { get; init; }

    /// <summary>The network.</summary>
    public UNetConfig Model { get; init; } = new();

    /// <summary>How to train: steps, batch, learning rate, schedule, checkpoints (its <see cref="TrainingRecipe.BaseChannels"/>
    /// is what <see cref="TrainingRecipe.Options"/> puts into <see cref="Model"/>; here <see cref="Model"/> decides).</summary>
    public TrainingRecipe Recipe { get; init; } = new();

    /// <summary>Seeds the initial weights and, through <see cref="DdpmTrainer.StepSeed"/>, every batch's images, timesteps and noise.</summary>
    public long Seed { get; init; }

    /// <summary>Where checkpoints go; null for none. A run finds the newest checkpoint here and resumes from it when
    /// <see cref="Resume"/> is set.</summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>
    /// For a LoRA fine-tune (<see cref="UNetConfig.Lora"/> set): the base model folder whose weights the network starts from
    /// and keeps frozen (its architecture must be <see cref="Model"/>'s without the adapters); null otherwise.
    /// </summary>
    public string? BaseModel { get; init; }

    /// <summary>Resume from the newest checkpoint in <see cref="CheckpointDirectory"/> if there is one.</summary>
    public bool Resume { get; init; } = true;

    /// <summary>
    /// For a class-conditional <see cref="Model"/>: the probability that a training example's label is replaced by the null
    /// label, so the network also learns the unconditional ε̂ that classifier-free guidance needs (Ho &amp; Salimans 2022
    /// use 0.1–0.2). Ignored by an unconditional model.
    /// </summary>
    public double ConditionDropout { get; init; } = 0.1;
}
