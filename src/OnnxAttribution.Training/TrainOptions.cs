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

    /// <summary>Resume from the newest checkpoint in <see cref="CheckpointDirectory"/> if there is one.</summary>
    public bool Resume { get; init; } = true;
}

/// <summary>Progress of a training run.</summary>
/// <param name="Step">Steps done.</param>
/// <param name="TotalSteps">Steps to do in total.</param>
/// <param name="Loss">The mean of the batch losses since the previous report.</param>
/// <param name="ImagesPerSecond">Training throughput since the previous report.</param>
/// <param name="MillisecondsPerStep">Wall time per step since the previous report.</param>
/// <param name="Elapsed">Wall time of this process's part of the run.</param>
public sealed record TrainProgress(int Step, int TotalSteps, double Loss, double ImagesPerSecond, double MillisecondsPerStep, TimeSpan Elapsed);

/// <summary>The outcome of a training run: the trained and the EMA networks. Dispose it to free their native memory.</summary>
public sealed class TrainResult : IDisposable
{
    internal TrainResult(UNet model, UNet ema, int steps, double finalLoss, TimeSpan elapsed, IReadOnlyList<double> losses)
    {
        Model = model;
        Ema = ema;
        Steps = steps;
        FinalLoss = finalLoss;
        Elapsed = elapsed;
        Losses = losses;
    }

    /// <summary>The network with the last optimizer step's weights.</summary>
    public UNet Model { get; }

    /// <summary>The exponential moving average of the weights: the network to sample from and export.</summary>
    public UNet Ema { get; }

    /// <summary>Steps done in total (including those before a resume).</summary>
    public int Steps { get; }

    /// <summary>The mean batch loss of the last up to 100 steps of this process.</summary>
    public double FinalLoss { get; }

    /// <summary>Wall time spent in this process.</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>The batch loss of every step this process ran, in order.</summary>
    public IReadOnlyList<double> Losses { get; }

    public void Dispose()
    {
        Model.Dispose();
        Ema.Dispose();
    }
}
