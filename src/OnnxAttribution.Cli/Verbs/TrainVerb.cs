using CommandLine;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Training;

namespace OnnxAttribution.Cli.Verbs;

/// <summary>The options of every verb that trains U-Nets ('train', 'train-ensemble'), and their training settings.</summary>
internal abstract class TrainingVerbBase : IVerbOptions
{
    [Option("data", Default = "embedded", HelpText = "Dataset: embedded (the shipped 16×16 Fashion-MNIST subset), " +
        "fashion-mnist (Debian package dataset-fashion-mnist), a folder of PNGs, or an IDX file.")]
    public string Data { get; set; } = "embedded";

    [Option("size", Default = 16, HelpText = "Image size to train at; images are resized by area averaging.")]
    public int Size { get; set; }

    [Option("subset", Default = "all", HelpText = "Training examples: 'all', a range 'start:end' (end exclusive), a list '3,5,9', or '@file' with one index per line.")]
    public string Subset { get; set; } = "all";

    [Option("steps", Default = 6000, HelpText = "Optimizer steps (of every member, for an ensemble).")]
    public int Steps { get; set; }

    [Option("batch-size", Default = 64)]
    public int BatchSize { get; set; }

    [Option("lr", Default = 1e-3, HelpText = "Adam learning rate (after a linear warm-up).")]
    public double LearningRate { get; set; }

    [Option("ema", Default = 0.999, HelpText = "EMA decay of the exported weights.")]
    public double Ema { get; set; }

    [Option("schedule", Default = ScheduleKind.Linear, HelpText = "β schedule: linear or cosine (T = 1000).")]
    public ScheduleKind Schedule { get; set; }

    [Option("base-channels", Default = 32, HelpText = "U-Net width at the first resolution (the second has twice as many).")]
    public int BaseChannels { get; set; }

    [Option("seed", Default = 0L, HelpText = "Seed of the run (an ensemble draws its members' seeds from it).")]
    public long Seed { get; set; }

    [Option("threads", Default = 0, HelpText = "TorchSharp threads; 0 for its default. Bit-identical resumption needs the same count.")]
    public int Threads { get; set; }

    [Option("checkpoint-every", Default = 500)]
    public int CheckpointEvery { get; set; }

    [Option("keep-checkpoints-every", Default = 0, HelpText = "Keep the checkpoints at every multiple of this step (for TracIn; export one with 'export --step S'); 0 keeps only the newest two.")]
    public int KeepCheckpointsEvery { get; set; }

    [Option("condition", Default = "none", HelpText = "What the model is conditioned on: none (unconditional), label (class-conditional: each " +
        "image's class label is embedded and added to the time embedding; generate and attribute then take --label) or text (each image's " +
        "caption, \"a dark sneaker\" from its class name and shade, read by a small caption encoder trained with the U-Net and by cross-attention " +
        "in its middle block; the encoder is exported as text-encoder.onnx; generate and attribute then take --prompt).")]
    public string Condition { get; set; } = "none";

    [Option("condition-dropout", Default = 0.1, HelpText = "With --condition label or text: the probability that a training image's label is " +
        "replaced by the null label (its caption by the empty prompt), so the model also learns the unconditional prediction that classifier-free guidance (generate --guidance) needs.")]
    public double ConditionDropout { get; set; }

    [Option("base", HelpText = "Fine-tune low-rank adapters (LoRA) of this model folder instead of training a U-Net from scratch: its weights " +
        "stay frozen, only the adapters are trained (on --data/--subset: the fine-tuning set), and the exported folder's gradients are the " +
        "adapters' (what featurize and attribute then use). The base decides the architecture and the condition: --base-channels and " +
        "--condition are not used.")]
    public string? Base { get; set; }

    [Option("lora-rank", Default = 4, HelpText = "With --base: the adapters' rank r.")]
    public int LoraRank { get; set; }

    [Option("lora-alpha", Default = 4.0, HelpText = "With --base: the adapters' output is scaled by alpha / rank.")]
    public double LoraAlpha { get; set; }

    [Option("lora-targets", Default = "conv", HelpText = "With --base: which layers get adapters: conv (the residual blocks' 3×3 " +
        "convolutions), linear (the time-embedding layers) or all (every convolution and linear layer). This U-Net has no attention layers.")]
    public string LoraTargets { get; set; } = "conv";

    /// <summary>The training settings these options give for <paramref name="dataset"/>.</summary>
    public TrainOptions ToTrainOptions(ImageDataset dataset)
    {
        var options = Recipe().Options(dataset, null, Seed, runDirectory: null);
        if (Base is { } baseModel)
        {
            var lora = OptionChecks.Lora(LoraRank, LoraAlpha, LoraTargets);
            return options with { Model = LoraBase.ConfigOf(baseModel, lora), BaseModel = baseModel, ConditionDropout = ConditionDropout };
        }
        return Condition switch
        {
            "label" => options with { Model = options.Model with { Classes = ClassesOf(Data, dataset) }, ConditionDropout = ConditionDropout },
            "text" => options with
            {
                Model = options.Model with
                {
                    Text = new TextConditionSettings { ClassNames = Captions.ClassNames(DatasetLocator.ClassNamesOf(Data), ClassesOf(Data, dataset)) },
                },
                ConditionDropout = ConditionDropout,
            },
            _ => options,
        };
    }

    /// <summary>The number of classes: a named dataset's (Fashion-MNIST: 10, whatever the subset holds), else the largest label + 1.</summary>
    /// <exception cref="UserInputException">The dataset has no labels.</exception>
    private static int ClassesOf(string data, ImageDataset dataset) => dataset.Labels is not { Count: > 0 } labels
        ? throw new UserInputException($"--condition: dataset '{dataset.Name}' has no labels (a label, or a caption's class, per image)")
        : DatasetLocator.ClassNamesOf(data).Count is > 0 and var named ? named : labels.Max() + 1;

    private TrainingRecipe Recipe() => new()
    {
        Steps = Steps,
        BatchSize = BatchSize,
        LearningRate = LearningRate,
        EmaDecay = Ema,
        BaseChannels = BaseChannels,
        Schedule = new ScheduleSettings(Schedule, 1000),
        CheckpointEvery = CheckpointEvery,
        KeepCheckpointsEvery = KeepCheckpointsEvery,
        Threads = Threads,
        ProgressEvery = 20,
    };

    /// <inheritdoc/>
    public void Validate()
    {
        OptionChecks.InRange(Size, 1, OptionChecks.MaxImageSize, "--size");
        OptionChecks.AtLeast(Steps, 0, "--steps");
        OptionChecks.AtLeast(BatchSize, 1, "--batch-size");
        OptionChecks.Positive(LearningRate, "--lr");
        OptionChecks.Fraction(Ema, "--ema");
        OptionChecks.AtLeast(BaseChannels, 1, "--base-channels");
        OptionChecks.AtLeast(Threads, 0, "--threads");
        OptionChecks.AtLeast(CheckpointEvery, 1, "--checkpoint-every");
        OptionChecks.AtLeast(KeepCheckpointsEvery, 0, "--keep-checkpoints-every");
        if (Condition is not ("none" or "label" or "text"))
        {
            throw new UserInputException($"--condition is '{Condition}'; expected none, label or text");
        }
        if (!(ConditionDropout is >= 0 and < 1))
        {
            throw new UserInputException($"--condition-dropout is {ConditionDropout}; expected a probability in [0, 1)");
        }
        if (Base is not null)
        {
            OptionChecks.Lora(LoraRank, LoraAlpha, LoraTargets);
        }
        OptionChecks.OutputDirectory(Out, "--out");
        ValidateVerb();
    }

    /// <summary>The run or ensemble folder.</summary>
    public abstract string Out { get; set; }

    /// <summary>Checks the options of the verb itself.</summary>
    protected virtual void ValidateVerb()
    {
    }
}

[Verb("train", HelpText = "Train a DDPM U-Net in TorchSharp on a dataset subset. Resumable: run the same command again after a kill and it continues from the last checkpoint.")]
internal sealed class TrainVerb : TrainingVerbBase
{
    [Option("out", Required = true, HelpText = "Run folder: checkpoints and run.json (pass it to 'export --checkpoint').")]
    public override string Out { get; set; } = "";

    [Option("json", HelpText = "Print the run summary as JSON on stdout.")]
    public bool Json { get; set; }
}

internal static class TrainCommand
{
    public static int Run(TrainVerb o, CancellationToken cancel)
    {
        var dataset = new DatasetLocator().Load(o.Data, o.Subset, o.Size);
        Output.Note($"training on {dataset.Count} images of {dataset.Name} ({dataset.Channels}×{dataset.Height}×{dataset.Width}), {o.Steps} steps of {o.BatchSize}");
        var options = o.ToTrainOptions(dataset) with { CheckpointDirectory = o.Out };
        var bar = new ConsoleProgress("train");
        double lastMs = 0, lastIps = 0;
        var progress = new SyncProgress<TrainProgress>(p =>
        {
            lastMs = p.MillisecondsPerStep;
            lastIps = p.ImagesPerSecond;
            bar.Report(p.Step, p.TotalSteps, $"loss {p.Loss:F4}, {p.MillisecondsPerStep:F0} ms/step, {p.ImagesPerSecond:F0} img/s");
        });
        using var result = DdpmTrainer.Train(options, progress, cancel);
        var info = TrainingRunInfo.Of(options, result, o.Data, o.Subset, lastMs, lastIps);
        info.Save(o.Out);
        if (o.Json)
        {
            Output.WriteJson(info);
        }
        else
        {
            Console.WriteLine($"trained {result.Steps} steps, final loss {result.FinalLoss:F4}, {result.Elapsed.TotalSeconds:F0} s; run folder {o.Out}");
        }
        return CliApp.Ok;
    }
}
