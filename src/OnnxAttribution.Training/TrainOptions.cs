using OnnxAttribution.Core.Data;
using OnnxAttribution.Core.Models;

namespace OnnxAttribution.Training;

/// <summary>The settings of a DDPM training run (<see cref="DdpmTrainer.Train"/>).</summary>
public sealed record TrainOptions
{
    /// <summary>The images, NCHW in [-1, 1]; their geometry must match <see cref="Model"/>.</summary>
    public required ImageDataset Data { get; init; }

    /// <summary>The indices of <see cref="Data"/> to train on (the training subset); null for all of them.</summary>
    public IReadOnlyList<int>? Indices { get; init; }

    /// <summary>The network.</summary>
    public UNetConfig Model { get; init; } = new();

    /// <summary>The noise schedule (default: linear β from 1e-4 to 0.02, T = 1000).</summary>
    public ScheduleSettings Schedule { get; init; } = new(ScheduleKind.Linear, 1000);

    /// <summary>Optimizer steps to run in total (a resumed run continues up to this count).</summary>
    public int Steps { get; init; } = 6000;

    public int BatchSize { get; init; } = 64;

    /// <summary>Adam's learning rate (β₁ = 0.9, β₂ = 0.999, ε = 1e-8), constant after <see cref="WarmupSteps"/>.</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Steps of linear learning-rate warm-up from 0.</summary>
    public int WarmupSteps { get; init; } = 200;

    /// <summary>Gradients are scaled down to this global L2 norm when larger; 0 turns clipping off.</summary>
    public double GradientClipNorm { get; init; } = 1.0;

    /// <summary>Decay of the exponential moving average of the weights (the EMA network is the one to export).
    /// Early on the decay used is min(decay, (1 + step)/(10 + step)).</summary>
    public double EmaDecay { get; init; } = 0.999;

    /// <summary>Seeds the initial weights and, through <see cref="DdpmTrainer.StepSeed"/>, every batch's images, timesteps and noise.</summary>
    public long Seed { get; init; }

    /// <summary>Intra-op threads for TorchSharp; 0 leaves its setting alone. Bit-identical resumption needs the same count.</summary>
    public int Threads { get; init; }

    /// <summary>Where checkpoints go; null for none. A run finds the newest checkpoint here and resumes from it when
    /// <see cref="Resume"/> is set.</summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>Write a checkpoint every this many steps (and at the end, and when cancelled).</summary>
    public int CheckpointEvery { get; init; } = 500;

    /// <summary>Keep the checkpoints of every multiple of this step for good (TracIn's checkpoints; export them with
    /// <see cref="ModelExport.ExportStep"/>); 0 keeps only the newest two, as for resuming.</summary>
    public int KeepCheckpointsEvery { get; init; }

    /// <summary>Resume from the newest checkpoint in <see cref="CheckpointDirectory"/> if there is one.</summary>
    public bool Resume { get; init; } = true;

    /// <summary>Report progress every this many steps.</summary>
    public int ProgressEvery { get; init; } = 20;
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
