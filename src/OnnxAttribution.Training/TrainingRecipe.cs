using System.Text.Json.Serialization;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Models;

namespace OnnxAttribution.Training;

/// <summary>
/// How a model is trained: the one description of a DDPM training run's settings, used by <c>train</c>, the ensemble
/// trainer and every model of an evaluation (the reference model and each retrained one share it, so they differ only
/// in their data and seed). What a run is trained on and where it keeps its checkpoints are in <see cref="TrainOptions"/>;
/// what it measured is <see cref="TrainingRunInfo"/>. The defaults are the fast recipe that fits M ≥ 32 retrainings
/// in about two hours on 2 cores (docs/guides/evaluate.md); <c>train</c> sets its own from the command line.
/// </summary>
/// <remarks>
/// The settings that came later (<see cref="Schedule"/>, <see cref="WarmupSteps"/>, <see cref="GradientClipNorm"/>) are
/// null for their default and then left out of the JSON, so a recipe recorded before they existed reads back equal.
/// </remarks>
public sealed record TrainingRecipe
{
    /// <summary>The noise schedule of a recipe whose <see cref="Schedule"/> is null: linear β from 1e-4 to 0.02, T = 1000.</summary>
    public static readonly ScheduleSettings DefaultSchedule = new(ScheduleKind.Linear, 1000);

    /// <summary>The warm-up of a recipe whose <see cref="WarmupSteps"/> is null.</summary>
    public const int DefaultWarmupSteps = 200;

    /// <summary>The clipping norm of a recipe whose <see cref="GradientClipNorm"/> is null.</summary>
    public const double DefaultGradientClipNorm = 1.0;

    /// <summary>Optimizer steps to run in total (a resumed run continues up to this count).</summary>
    public int Steps { get; init; } = 1500;

    /// <summary>Images per optimizer step.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Adam's learning rate (β₁ = 0.9, β₂ = 0.999, ε = 1e-8), constant after the warm-up.</summary>
    public double LearningRate { get; init; } = 2e-3;

    /// <summary>Steps of linear learning-rate warm-up from 0; null for <see cref="DefaultWarmupSteps"/>.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? WarmupSteps { get; init; }

    /// <summary>Gradients are scaled down to this global L2 norm when larger (0 turns clipping off); null for <see cref="DefaultGradientClipNorm"/>.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? GradientClipNorm { get; init; }

    /// <summary>Decay of the exponential moving average of the weights (the EMA network is the one exported).
    /// Early on the decay used is min(decay, (1 + step)/(10 + step)).</summary>
    public double EmaDecay { get; init; } = 0.995;

    /// <summary>The U-Net's width (<see cref="UNetConfig.BaseChannels"/>) of the networks <see cref="Options"/> makes.</summary>
    public int BaseChannels { get; init; } = 16;

    /// <summary>For class-conditional models the number of classes (<see cref="UNetConfig.Classes"/>); 0 (the default, left out
    /// of JSON) for unconditional ones.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int Classes { get; init; }

    /// <summary>For text-conditioned models their prompt settings (<see cref="UNetConfig.Text"/>); null (left out of JSON) otherwise.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public TextConditionSettings? Text { get; init; }

    /// <summary>For LoRA fine-tunes, the base model folder every model starts from (<see cref="TrainOptions.BaseModel"/>); null
    /// (left out of JSON) for models trained from scratch. The base decides the architecture: <see cref="BaseChannels"/> and
    /// <see cref="Classes"/> are then not used.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? BaseModel { get; init; }

    /// <summary>With <see cref="BaseModel"/>: the adapters trained on it.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public LoraSettings? Lora { get; init; }

    /// <summary>The noise schedule (a retrained model must use its reference's); null for <see cref="DefaultSchedule"/>.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ScheduleSettings? Schedule { get; init; }

    /// <summary>Steps between progress reports (not a setting of the result: not recorded).</summary>
    [JsonIgnore]
    public int ProgressEvery { get; init; } = 50;

    /// <summary>Write a checkpoint every this many steps (and at the end, and when cancelled).</summary>
    public int CheckpointEvery { get; init; } = 250;

    /// <summary>Keep the checkpoints of every multiple of this step for good (TracIn's checkpoints; export them with
    /// <see cref="ModelExport.ExportStep"/>); 0 keeps only the newest two, as for resuming.</summary>
    public int KeepCheckpointsEvery { get; init; }

    /// <summary>TorchSharp intra-op threads (0: its default). Bit-identical resumption needs the same count.</summary>
    public int Threads { get; init; }

    /// <summary>The schedule trained with: <see cref="Schedule"/> or <see cref="DefaultSchedule"/>.</summary>
    [JsonIgnore]
    public ScheduleSettings ScheduleOrDefault => Schedule ?? DefaultSchedule;

    /// <summary>The warm-up trained with: <see cref="WarmupSteps"/> or <see cref="DefaultWarmupSteps"/>.</summary>
    [JsonIgnore]
    public int WarmupStepsOrDefault => WarmupSteps ?? DefaultWarmupSteps;

    /// <summary>The clipping norm trained with: <see cref="GradientClipNorm"/> or <see cref="DefaultGradientClipNorm"/>.</summary>
    [JsonIgnore]
    public double GradientClipNormOrDefault => GradientClipNorm ?? DefaultGradientClipNorm;

    /// <summary>The trainer's options for <paramref name="indices"/> of <paramref name="data"/> (null: every row).</summary>
    /// <param name="data">The images.</param>
    /// <param name="indices">The rows trained on; null for all.</param>
    /// <param name="seed">The run's seed.</param>
    /// <param name="runDirectory">Where checkpoints go; null for none.</param>
    public TrainOptions Options(ImageDataset data, IReadOnlyList<int>? indices, long seed, string? runDirectory)
    {
        ArgumentNullException.ThrowIfNull(data);
        return new TrainOptions
        {
            Data = data,
            Indices = indices,
            Model = BaseModel is { } baseModel
                ? LoraBase.ConfigOf(baseModel, Lora ?? throw new UserInputException("training recipe: a base model is set but no LoRA settings"))
                : new UNetConfig { ImageSize = data.Height, Channels = data.Channels, BaseChannels = BaseChannels, Classes = Classes, Text = Text },
            BaseModel = BaseModel,
            Recipe = this,
            Seed = seed,
            CheckpointDirectory = runDirectory,
        };
    }
}
