using System.Text.Json;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Training;

/// <summary>
/// What a training run was asked to do and what it measured: <c>run.json</c> beside its checkpoints. The settings are
/// those of its <see cref="TrainingRecipe"/>, flat in the file as always.
/// </summary>
/// <remarks><see cref="WarmupSteps"/> came later: a run.json without it was written by a run with the default 200 warm-up steps.</remarks>
public sealed record TrainingRunInfo
{
    /// <summary>The dataset as the user named it.</summary>
    public required string Dataset { get; init; }

    /// <summary>The dataset's fingerprint (<see cref="Core.Data.ImageDataset.Fingerprint"/>).</summary>
    public required string DatasetFingerprint { get; init; }

    /// <summary>The rows trained on, as the user named them.</summary>
    public required string Subset { get; init; }

    /// <summary>Image height and width.</summary>
    public int ImageSize { get; init; }

    /// <summary>Images trained on.</summary>
    public int Examples { get; init; }

    /// <summary>The noise schedule.</summary>
    public required ScheduleSettings Schedule { get; init; }

    /// <summary>Optimizer steps done.</summary>
    public int Steps { get; init; }

    /// <summary>Images per step.</summary>
    public int BatchSize { get; init; }

    /// <summary>Adam's learning rate after the warm-up.</summary>
    public double LearningRate { get; init; }

    /// <summary>The decay of the weights' moving average.</summary>
    public double EmaDecay { get; init; }

    /// <summary>The run's seed.</summary>
    public long Seed { get; init; }

    /// <summary>The mean batch loss of the last up to 100 steps.</summary>
    public double FinalLoss { get; init; }

    /// <summary>Wall time of the run's last process.</summary>
    public double TrainSeconds { get; init; }

    /// <summary>Wall time per step (the last measured).</summary>
    public double MillisecondsPerStep { get; init; }

    /// <summary>Training throughput (the last measured).</summary>
    public double ImagesPerSecond { get; init; }

    /// <summary>TorchSharp threads (0: its default).</summary>
    public int Threads { get; init; }

    /// <summary>Steps of learning-rate warm-up.</summary>
    public int WarmupSteps { get; init; } = TrainingRecipe.DefaultWarmupSteps;

    /// <summary>For a LoRA fine-tune, the base model folder as given (<see cref="TrainOptions.BaseModel"/>); null otherwise.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Base { get; init; }

    /// <summary>For a LoRA fine-tune, SHA-256 of the base's forward graph when the run finished; null otherwise.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? BaseSha256 { get; init; }

    /// <summary>The file name in the run folder.</summary>
    public const string FileName = "run.json";

    /// <summary>What a finished <see cref="DdpmTrainer.Train"/> run with <paramref name="options"/> was asked and measured.</summary>
    /// <param name="options">The run's options.</param>
    /// <param name="result">Its result.</param>
    /// <param name="dataset">The dataset as the user named it.</param>
    /// <param name="subset">The rows trained on, as the user named them.</param>
    /// <param name="millisecondsPerStep">The last measured step time; by default the whole run's mean.</param>
    /// <param name="imagesPerSecond">The last measured throughput; by default the whole run's mean.</param>
    public static TrainingRunInfo Of(TrainOptions options, TrainResult result, string dataset, string subset, double? millisecondsPerStep = null, double? imagesPerSecond = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(result);
        double seconds = result.Elapsed.TotalSeconds;
        var recipe = options.Recipe;
        return new TrainingRunInfo
        {
            Dataset = dataset,
            DatasetFingerprint = options.Data.Fingerprint,
            Subset = subset,
            ImageSize = options.Data.Height,
            Examples = options.Indices?.Count ?? options.Data.Count,
            Schedule = recipe.ScheduleOrDefault,
            Steps = result.Steps,
            BatchSize = recipe.BatchSize,
            LearningRate = recipe.LearningRate,
            EmaDecay = recipe.EmaDecay,
            Seed = options.Seed,
            FinalLoss = result.FinalLoss,
            TrainSeconds = seconds,
            MillisecondsPerStep = millisecondsPerStep ?? (1000 * seconds / Math.Max(1, result.Steps)),
            ImagesPerSecond = imagesPerSecond ?? (seconds > 0 ? result.Steps * (double)recipe.BatchSize / seconds : 0),
            Threads = recipe.Threads,
            WarmupSteps = recipe.WarmupStepsOrDefault,
            Base = options.BaseModel,
            BaseSha256 = options.BaseModel is { } baseModel ? LoraBase.Sha256(baseModel) : null,
        };
    }

    /// <summary>Writes run.json into <paramref name="runDirectory"/> (created if missing), atomically.</summary>
    public void Save(string runDirectory)
    {
        Directory.CreateDirectory(runDirectory);
        var path = Path.Combine(runDirectory, FileName);
        JsonFile.Save(path, this);
    }

    /// <exception cref="ModelFileException">run.json is missing or invalid.</exception>
    public static TrainingRunInfo Load(string runDirectory)
    {
        var path = Path.Combine(runDirectory, FileName);
        if (!File.Exists(path))
        {
            throw new ModelFileException($"{path} not found: the checkpoint folder must be the output folder of a finished training run");
        }
        try
        {
            return JsonSerializer.Deserialize<TrainingRunInfo>(File.ReadAllText(path), ModelMetadata.JsonOptions)
                ?? throw new ModelFileException($"{path}: empty");
        }
        catch (JsonException e)
        {
            throw new ModelFileException($"{path}: not a valid run description ({e.Message})", e);
        }
    }
}
