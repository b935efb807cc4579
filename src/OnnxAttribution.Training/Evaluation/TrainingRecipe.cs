using System.Text.Json.Serialization;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Core.Models;

namespace OnnxAttribution.Training.Evaluation;

/// <summary>
/// How every model of an evaluation is trained: the reference model (all N rows) and each retrained model (a subset)
/// share it, so they differ only in their data (and, where asked, their seed). The defaults are the fast recipe that fits
/// M ≥ 32 retrainings in about two hours on 2 cores (README, "Evaluation").
/// </summary>
public sealed record TrainingRecipe
{
    public int Steps { get; init; } = 1500;

    public int BatchSize { get; init; } = 32;

    public double LearningRate { get; init; } = 2e-3;

    public double EmaDecay { get; init; } = 0.995;

    public int BaseChannels { get; init; } = 16;

    /// <summary>
    /// The noise schedule (a retrained model must use its reference's); null for the linear schedule with T = 1000. Left
    /// out of the recorded recipe when null, so evaluations recorded before it existed still match.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ScheduleSettings? Schedule { get; init; }

    /// <summary>The schedule a recipe without one trains with.</summary>
    public static readonly ScheduleSettings DefaultSchedule = new(ScheduleKind.Linear, 1000);

    /// <summary>Steps between progress reports (not a setting of the result: not recorded).</summary>
    [JsonIgnore]
    public int ProgressEvery { get; init; } = 50;

    public int CheckpointEvery { get; init; } = 250;

    /// <summary>Checkpoints kept at multiples of this step (TracIn's checkpoints of the reference model); 0 keeps the newest two.</summary>
    public int KeepCheckpointsEvery { get; init; }

    /// <summary>TorchSharp threads per training (0: its default).</summary>
    public int Threads { get; init; }

    /// <summary>The trainer's options for <paramref name="indices"/> of <paramref name="data"/> (null: every row).</summary>
    public TrainOptions Options(ImageDataset data, IReadOnlyList<int>? indices, long seed, string? runDirectory)
    {
        ArgumentNullException.ThrowIfNull(data);
        return new TrainOptions
        {
            Data = data,
            Indices = indices,
            Model = new UNetConfig { ImageSize = data.Height, Channels = data.Channels, BaseChannels = BaseChannels },
            Schedule = Schedule ?? DefaultSchedule,
            Steps = Steps,
            BatchSize = BatchSize,
            LearningRate = LearningRate,
            EmaDecay = EmaDecay,
            Seed = seed,
            Threads = Threads,
            CheckpointDirectory = runDirectory,
            CheckpointEvery = CheckpointEvery,
            KeepCheckpointsEvery = KeepCheckpointsEvery,
            ProgressEvery = ProgressEvery,
        };
    }
}

/// <summary>Trains a recipe on some rows and exports the result as a model folder, resuming wherever a killed run stopped.</summary>
public static class RecipeTrainer
{
    /// <summary>
    /// Trains (or resumes) in <paramref name="runDirectory"/> and exports the EMA weights to <paramref name="modelDirectory"/>
    /// (forward.onnx and model.json; with <paramref name="withVjp"/> also vjp.onnx). A model folder with model.json is
    /// complete (it is written to a temporary folder and renamed) and is returned as it is.
    /// </summary>
    /// <returns>True when the model was trained now, false when it already existed.</returns>
    public static bool TrainAndExport(TrainingRecipe recipe, ImageDataset data, IReadOnlyList<int>? indices, long seed, string subsetLabel,
        string runDirectory, string modelDirectory, bool withVjp, IProgress<TrainProgress>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(recipe);
        ArgumentNullException.ThrowIfNull(data);
        if (File.Exists(Path.Combine(modelDirectory, ModelMetadata.FileName)))
        {
            return false;
        }
        var options = recipe.Options(data, indices, seed, runDirectory);
        using (var result = DdpmTrainer.Train(options, progress, cancel))
        {
            TrainingRunInfo.Of(options, result, data.Name, subsetLabel).Save(runDirectory);
        }
        // Exported to a temporary folder and renamed: a model folder with model.json is always complete.
        var temporary = modelDirectory.TrimEnd('/') + ".tmp";
        if (Directory.Exists(temporary))
        {
            Directory.Delete(temporary, recursive: true);
        }
        ModelExport.Export(runDirectory, temporary, Path.GetFileName(modelDirectory.TrimEnd('/')), withVjp);
        if (Directory.Exists(modelDirectory))
        {
            Directory.Delete(modelDirectory, recursive: true);
        }
        Directory.Move(temporary, modelDirectory);
        return true;
    }

    /// <summary>
    /// Exports the raw weights of every checkpoint kept at multiples of <see cref="TrainingRecipe.KeepCheckpointsEvery"/>
    /// (with their step and learning rate, for TracIn) to <c>checkpoints/step-NNNNNN</c> beside the model; existing ones are kept.
    /// </summary>
    /// <returns>The checkpoint model folders, in step order.</returns>
    public static IReadOnlyList<string> ExportKeptCheckpoints(TrainingRecipe recipe, string runDirectory, string modelDirectory)
    {
        ArgumentNullException.ThrowIfNull(recipe);
        var folders = new List<string>();
        if (recipe.KeepCheckpointsEvery <= 0)
        {
            return folders;
        }
        for (int step = recipe.KeepCheckpointsEvery; step <= recipe.Steps; step += recipe.KeepCheckpointsEvery)
        {
            var dir = Path.Combine(modelDirectory, "checkpoints", $"step-{step:D6}");
            if (!File.Exists(Path.Combine(dir, ModelMetadata.FileName)))
            {
                ModelExport.ExportStep(runDirectory, step, dir, $"step-{step}");
            }
            folders.Add(dir);
        }
        return folders;
    }
}
