using CommandLine;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution.Ensembles;
using OnnxAttribution.Training;

namespace OnnxAttribution.Cli.Verbs;

[Verb("train-ensemble", HelpText = "Train an encoded ensemble (Dai & Gifford 2023): M U-Nets, each on the groups of training rows its code selects, " +
    "exported to <out>/member-NN/ (model folders: 'generate --model <out>/member-03' or 'generate --ensemble <out> --member 3'). " +
    "The folder is the method store of 'attribute --store <out>' (method ensemble). Resumable: run the same command again after a kill.")]
internal sealed class TrainEnsembleVerb : TrainingVerbBase
{
    [Option("out", Required = true, HelpText = "The ensemble folder (ensemble.json, member-NN/, source.json, method.json).")]
    public override string Out { get; set; } = "";

    [Option("members", Default = 8, HelpText = "M, the number of models (at least 2); each sees about half the groups.")]
    public int Members { get; set; }

    [Option("groups", HelpText = "G, the number of groups of rows (default: the number of rows up to 1000, else 1000). Rows of a group share their score.")]
    public int? Groups { get; set; }

    [Option("grouping", Default = GroupingKind.Random, HelpText = "random (a seeded permutation cut into equal groups) or contiguous (rows in order).")]
    public GroupingKind Grouping { get; set; }

    [Option("grouping-seed", Default = 0L)]
    public long GroupingSeed { get; set; }

    [Option("encoding-seed", Default = 0L, HelpText = "Seed of the encoding matrix (which members see which groups).")]
    public long EncodingSeed { get; set; }

    [Option("timesteps", Default = 20, HelpText = "Scoring: K evenly spaced timesteps at which a query's loss is measured under every member.")]
    public int Timesteps { get; set; }

    [Option("noise-draws", Default = 2, HelpText = "Scoring: noise draws per timestep.")]
    public int NoiseDraws { get; set; }

    [Option("noise-seed", Default = 0L, HelpText = "Scoring: seed of the noise draws.")]
    public long NoiseSeed { get; set; }

    [Option("keep-checkpoints", HelpText = "Keep each member's training checkpoints after its export.")]
    public bool KeepCheckpoints { get; set; }

    [Option("json", HelpText = "Print the run summary as JSON on stdout.")]
    public bool Json { get; set; }

    /// <inheritdoc/>
    protected override void ValidateVerb()
    {
        OptionChecks.AtLeast(Members, 2, "--members");
        if (Groups is int groups)
        {
            OptionChecks.AtLeast(groups, 1, "--groups");
        }
        OptionChecks.AtLeast(Timesteps, 1, "--timesteps");
        OptionChecks.AtLeast(NoiseDraws, 1, "--noise-draws");
    }
}

internal static class TrainEnsembleCommand
{
    public static int Run(TrainEnsembleVerb o, CancellationToken cancel)
    {
        var dataset = new Core.Data.DatasetLocator().Load(o.Data, o.Subset, o.Size);
        var options = new EnsembleTrainOptions
        {
            Data = dataset,
            DataName = o.Data,
            Subset = o.Subset,
            OutDirectory = o.Out,
            Members = o.Members,
            Groups = o.Groups,
            Grouping = o.Grouping,
            GroupingSeed = o.GroupingSeed,
            EncodingSeed = o.EncodingSeed,
            Seed = o.Seed,
            Training = o.ToTrainOptions(dataset),
            ScoringTimesteps = o.Timesteps,
            ScoringNoiseDraws = o.NoiseDraws,
            ScoringNoiseSeed = o.NoiseSeed,
            KeepCheckpoints = o.KeepCheckpoints,
        };
        Output.Note($"ensemble of {o.Members} members on {dataset.Count} images of {dataset.Name} ({dataset.Channels}×{dataset.Height}×{dataset.Width}), " +
            $"{options.Groups ?? EnsembleTrainer.DefaultGroups(dataset.Count)} groups, {o.Steps} steps of {o.BatchSize} each");
        var bar = new ConsoleProgress("train-ensemble");
        var progress = new SyncProgress<EnsembleProgress>(p => bar.Report(p.Done, p.Total,
            $"member {p.Member + 1}/{p.Members} step {p.Step}/{p.Steps}, loss {p.Loss:F4}, {p.MillisecondsPerStep:F0} ms/step", p.Remaining));
        var result = EnsembleTrainer.Train(options, progress, cancel);
        if (o.Json)
        {
            Output.WriteJson(new
            {
                ensemble = result.Directory,
                rows = result.Design.Rows,
                groups = result.Design.Groups,
                members = result.Members,
                scoring = result.Scoring,
            });
        }
        else
        {
            foreach (var m in result.Members)
            {
                Console.WriteLine(m.Trained
                    ? $"member {m.Member}: {m.Rows} rows, final loss {m.FinalLoss:F4}, {m.Seconds:F0} s, {m.Bytes:N0} bytes"
                    : $"member {m.Member}: already trained ({m.Rows} rows, {m.Bytes:N0} bytes)");
            }
            Console.WriteLine($"ensemble {result.Directory}: {result.Design.Members} members × {result.Design.Groups} groups of {result.Design.Rows} rows; " +
                $"scoring {result.Scoring.Timesteps.Count} timesteps × {result.Scoring.NoiseDraws} draws. Attribute with 'attribute --store {result.Directory}'");
        }
        return CliApp.Ok;
    }
}
