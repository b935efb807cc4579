using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using OnnxAttribution.Store;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Ensembles;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Runtime.Models;

namespace OnnxAttribution.Training;

/// <summary>
/// Trains an encoded ensemble (Dai &amp; Gifford 2023, "Training Data Attribution for Diffusion Models", arXiv:2306.02174):
/// the design (<see cref="EnsembleDesign"/>: groups and encoding matrix E), then member m trained by
/// <see cref="DdpmTrainer"/> on the rows of the groups with E[m,g] = 1 and exported to <c>member-NN/</c> (forward.onnx +
/// model.json), then <c>source.json</c> and, last, <c>method.json</c>: the folder is the method store of
/// <see cref="EnsembleMethod"/>.
/// </summary>
/// <remarks>
/// Resumable: a rerun with the same options checks that ensemble.json matches, skips exported members (model.json written)
/// and resumes the running member from its newest checkpoint (bit-identical given the same thread count). A rerun of a
/// complete ensemble only rewrites method.json, so the scoring plan can be changed without training.
/// </remarks>
public static class EnsembleTrainer
{
    /// <summary>The most groups <see cref="DefaultGroups"/> gives.</summary>
    public const int MaxDefaultGroups = 1000;

    /// <summary>The default G: every row its own group up to <see cref="MaxDefaultGroups"/> rows, then that many groups.</summary>
    public static int DefaultGroups(int rows) => Math.Min(rows, MaxDefaultGroups);

    /// <summary>The design these options give (what ensemble.json holds).</summary>
    /// <exception cref="UserInputException">The sizes do not fit.</exception>
    public static EnsembleDesign Design(EnsembleTrainOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        int rows = options.Data.Count;
        return EnsembleDesign.Create(rows, options.Groups ?? DefaultGroups(rows), options.Members, options.Grouping,
            options.GroupingSeed, options.EncodingSeed, options.Seed, options.Data.Fingerprint) with { Training = TrainingJson(options.Training) };
    }

    /// <summary>Trains the members that are not done yet and completes the store.</summary>
    /// <param name="options">The run.</param>
    /// <param name="progress">Receives progress across members.</param>
    /// <param name="cancellationToken">Cancelling checkpoints the running member and throws.</param>
    /// <exception cref="UserInputException">The options do not fit, or the folder holds another ensemble.</exception>
    /// <exception cref="OperationCanceledException">The run was cancelled; rerun to continue.</exception>
    public static EnsembleTrainResult Train(EnsembleTrainOptions options, IProgress<EnsembleProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.Training);
        // Everything is checked before ensemble.json is written: a rerun with corrected options must not meet a stale design.
        // (Each member gets its own checkpoint folder; a stand-in lets kept checkpoints pass the check.)
        DdpmTrainer.Validate(options.Training with { Data = options.Data, Indices = null, CheckpointDirectory = Path.Combine(options.OutDirectory, "checkpoints") });
        var design = Design(options);
        var schedule = new NoiseSchedule(options.Training.Recipe.ScheduleOrDefault);
        if (options.ScoringTimesteps < 1 || options.ScoringTimesteps > schedule.Timesteps || options.ScoringNoiseDraws < 1)
        {
            throw new UserInputException($"ensemble scoring plan: needs 1 to {schedule.Timesteps} timesteps (got {options.ScoringTimesteps}) " +
                $"and at least one noise draw (got {options.ScoringNoiseDraws})");
        }
        var scoring = EnsembleScoring.Default(schedule, design.Members, options.ScoringTimesteps, options.ScoringNoiseDraws, options.ScoringNoiseSeed);
        var dir = options.OutDirectory;
        if (EnsembleDesign.TryLoad(dir) is { } existing)
        {
            if (design.FirstDifference(existing) is { } field)
            {
                throw new UserInputException($"{Path.Combine(dir, StoreFiles.Ensemble)}: field '{field}' differs from this run's; " +
                    "the folder holds another ensemble (use another folder, or the options it was started with)");
            }
        }
        else
        {
            design.Save(dir);
        }

        int steps = options.Training.Recipe.Steps;
        long total = (long)design.Members * steps;
        var results = new List<EnsembleMemberResult>();
        for (int m = 0; m < design.Members; m++)
        {
            var memberDir = Path.Combine(dir, EnsembleDesign.MemberFolder(m));
            var rows = design.RowsOf(m);
            if (File.Exists(Path.Combine(memberDir, ModelMetadata.FileName)))
            {
                results.Add(new EnsembleMemberResult(m, rows.Length, false, double.NaN, 0, FolderBytes(memberDir)));
                continue;
            }
            cancellationToken.ThrowIfCancellationRequested();
            var clock = Stopwatch.StartNew();
            var checkpoints = Path.Combine(memberDir, "checkpoints");
            var member = options.Training with
            {
                Data = options.Data,
                Indices = rows,
                Seed = design.MemberSeeds[m],
                CheckpointDirectory = checkpoints,
                Resume = true,
            };
            int index = m;
            long before = (long)m * steps;
            var memberProgress = progress is null ? null : new SyncProgress<TrainProgress>(p => progress.Report(new EnsembleProgress(
                index, design.Members, p.Step, p.TotalSteps, before + p.Step, total, p.Loss, p.MillisecondsPerStep,
                TimeSpan.FromMilliseconds(p.MillisecondsPerStep * (total - before - p.Step)))));
            double finalLoss;
            using (var trained = DdpmTrainer.Train(member, memberProgress, cancellationToken))
            {
                finalLoss = trained.FinalLoss;
                var info = new TrainingInfo(options.DataName,
                    $"{options.Subset}, member {m} of {design.Members}: {rows.Length} of {design.Rows} rows ({StoreFiles.Ensemble})",
                    trained.Steps, member.Recipe.BatchSize, member.Recipe.LearningRate, member.Recipe.EmaDecay, member.Seed, trained.FinalLoss, trained.Elapsed.TotalSeconds);
                // forward.onnx first, model.json last: its presence says the member is complete. The name goes into
                // forward.onnx: the member's, not the folder's, so a moved or resumed ensemble has the same bytes.
                OnnxExporter.Export(trained.Ema, member.Recipe.ScheduleOrDefault, info, memberDir, $"ensemble-{EnsembleDesign.MemberFolder(m)}");
            }
            if (!options.KeepCheckpoints && Directory.Exists(checkpoints))
            {
                Directory.Delete(checkpoints, recursive: true);
            }
            results.Add(new EnsembleMemberResult(m, rows.Length, true, finalLoss, clock.Elapsed.TotalSeconds, FolderBytes(memberDir)));
        }
        new StoreSource(Path.Combine(dir, EnsembleDesign.MemberFolder(0)), options.DataName, options.Subset, options.Data.Height).Save(dir);
        MethodManifest.Of(EnsembleMethod.MethodName, scoring).Save(dir);
        return new EnsembleTrainResult(dir, design, scoring, results);
    }

    /// <summary>The settings every member shares, as recorded in ensemble.json (threads and checkpointing left out: they
    /// do not change what a member learns, apart from the last bit with another thread count).</summary>
    private static JsonObject TrainingJson(TrainOptions t) => new()
    {
        ["model"] = t.Model.ToJson(),
        ["schedule"] = JsonSerializer.SerializeToNode(t.Recipe.ScheduleOrDefault, ModelMetadata.JsonOptions),
        ["steps"] = t.Recipe.Steps,
        ["batchSize"] = t.Recipe.BatchSize,
        ["learningRate"] = t.Recipe.LearningRate,
        ["warmupSteps"] = t.Recipe.WarmupStepsOrDefault,
        ["gradientClipNorm"] = t.Recipe.GradientClipNormOrDefault,
        ["emaDecay"] = t.Recipe.EmaDecay,
    };

    private static long FolderBytes(string directory) =>
        new DirectoryInfo(directory).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);
}
