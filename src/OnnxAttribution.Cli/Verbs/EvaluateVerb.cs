using CommandLine;
using OnnxAttribution.Core;
using OnnxAttribution.Core.Store;
using OnnxAttribution.Training;
using OnnxAttribution.Training.Evaluation;

namespace OnnxAttribution.Cli.Verbs;

[Verb("evaluate", HelpText = "Counterfactual validation. 'evaluate lds': train M random α-subsets S times each (different seeds) and report each method's Linear Datamodeling Score on Q test queries against the subsets' mean loss, with a bootstrap 95% interval over queries, a permutation test against random (Journey-TRAK also per trajectory step), the noise ceiling of the S seeds, and each method's damping chosen beforehand on V validation queries. 'evaluate counterfactual': for each store, remove each query's top-k attributed images, retrain, regenerate from the same noise, and compare with removing k random images. Both resume after a kill: every trained model and every score file is saved once.")]
internal sealed class EvaluateVerb : IVerbOptions
{
    [Value(0, MetaName = "kind", Required = true, HelpText = "lds, counterfactual, lds-report (lds.md again from the lds.json in --out), or lds-curves (every lds*.json in --out as one table, lds-curves.md, and a plot of LDS against build cost, lds-curves.png).")]
    public string Kind { get; set; } = "";

    [Option("out", Required = true, HelpText = "Evaluation folder (models, stores, scores, results); rerun the same command to continue.")]
    public string Out { get; set; } = "";

    [Option("data", Default = "embedded", HelpText = "lds: training images (the reference model and every subset model train on them).")]
    public string Data { get; set; } = "embedded";

    [Option("subset", Default = "0:1000", HelpText = "lds: which rows of --data are the training set N.")]
    public string Subset { get; set; } = "0:1000";

    [Option("model", HelpText = "lds: attribute this existing model instead of training the reference here. The subset models use the recipe flags, so this is only meaningful for a model trained with the same recipe on the same rows.")]
    public string? Model { get; set; }

    [Option("subset-models", Default = 32, HelpText = "lds: M, the number of retrained subset models. Rerunning with a larger M keeps every model already trained.")]
    public int SubsetModels { get; set; }

    [Option("subset-seeds", Default = 3, HelpText = "lds: S, training seeds per subset model; a query's measured output is its mean loss over them, and S ≥ 2 gives the noise ceiling. Rerunning with a larger S keeps every model already trained.")]
    public int SubsetSeeds { get; set; }

    [Option("validation-queries", Default = 20, HelpText = "lds: V generated validation queries (seeds 2^32 + 0 … V−1, never a test query's seed 0 … Q−1): each method's damping is chosen on them, then applied once to the test queries.")]
    public int ValidationQueries { get; set; }

    [Option("damping-grid", Separator = ',', Default = new[] { 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1 }, HelpText = "lds: the relative dampings λ tried on the validation queries (methods with a damping: trak, d-trak, das, journey-trak, kfac, ekfac).")]
    public IEnumerable<double> DampingGrid { get; set; } = [];

    [Option("alpha", Default = 0.5, HelpText = "lds: subset size as a fraction of N.")]
    public double Alpha { get; set; }

    [Option("queries", Default = 50, HelpText = "Number of generated (test) queries (seeds 0 … Q−1 of the reference model).")]
    public int Queries { get; set; }

    [Option("methods", Separator = ',', Default = new[] { "trak", "d-trak", "pixel", "random" }, HelpText = "lds: methods to score, comma-separated (see 'featurize --method').")]
    public IEnumerable<string> Methods { get; set; } = [];

    [Option("ensemble", HelpText = "lds: a trained ensemble folder (train-ensemble on the same rows) to score as method 'ensemble'.")]
    public string? Ensemble { get; set; }

    [Option("store", HelpText = "counterfactual: the method stores whose top-k are removed, comma-separated, all on one model (which must record its training recipe in model.json); they share the random removals.")]
    public string? Store { get; set; }

    [Option("remove-top", Default = 50, HelpText = "counterfactual: k, how many top-attributed training images to remove per query.")]
    public int RemoveTop { get; set; }

    [Option("random-models", Default = 3, HelpText = "counterfactual: models retrained without k random images (shared by all queries).")]
    public int RandomModels { get; set; }

    [Option("seed", Default = 0L, HelpText = "Seed of the subsets, the random removals and the reference model's training.")]
    public long Seed { get; set; }

    [Option("steps", Default = 1500, HelpText = "Recipe: optimizer steps per model.")]
    public int Steps { get; set; }

    [Option("batch-size", Default = 32, HelpText = "Recipe: batch size.")]
    public int BatchSize { get; set; }

    [Option("lr", Default = 2e-3, HelpText = "Recipe: Adam learning rate.")]
    public double LearningRate { get; set; }

    [Option("ema", Default = 0.995, HelpText = "Recipe: EMA decay of the exported weights.")]
    public double Ema { get; set; }

    [Option("base-channels", Default = 16, HelpText = "Recipe: U-Net width.")]
    public int BaseChannels { get; set; }

    [Option("train-threads", Default = 0, HelpText = "TorchSharp threads per training; 0 for its default.")]
    public int TrainThreads { get; set; }

    [Option("measure-timesteps", Default = 100, HelpText = "Measured output: the query's diffusion loss averaged over this many evenly spaced timesteps …")]
    public int MeasureTimesteps { get; set; }

    [Option("measure-draws", Default = 3, HelpText = "… times this many fixed noise draws.")]
    public int MeasureDraws { get; set; }

    [Option("timesteps", Default = 10, HelpText = "Methods: K timesteps of the gradient methods' features.")]
    public int Timesteps { get; set; }

    [Option("noise-draws", Default = 1, HelpText = "Methods: noise draws per timestep of the gradient methods' features.")]
    public int NoiseDraws { get; set; }

    [Option("dim", Default = 4096, HelpText = "Methods: projection dimension k.")]
    public int Dim { get; set; }

    [Option("point", Default = "", HelpText = "lds: name of a setting point of the curves (letters, digits, '.', '_', '-'): its stores, scores and results go to stores-NAME/, scores-NAME/ and lds-NAME.json (lds-NAME-R3.json with --reference-models 3), beside the unnamed point's stores/, scores/ and lds.json, sharing the models and measured losses; every R shares a point's stores. A store built with other --timesteps/--noise-draws/--dim is refused, naming this option.")]
    public string Point { get; set; } = "";

    [Option("reference-models", Default = 1, HelpText = "lds: R, independently trained reference models (the first attributed and generating the queries, the others trained with seeds from the stream \"lds reference model\"); a method's scores are the mean of its R stores' scores, TRAK's estimator over models. Reference r's stores go to stores-reference-r/ (stores-NAME-reference-r/ with --point NAME), the results to lds-R{R}.json. A larger R keeps every model and store already built.")]
    public int ReferenceModels { get; set; }

    [Option("damping", Default = 1e-3, HelpText = "Methods: relative damping λ a store is first built with (lds then chooses λ from --damping-grid on the validation queries).")]
    public double Damping { get; set; }

    [Option("journey-steps", Default = 10, HelpText = "Methods: journey-trak's number of attributed trajectory steps (--sampling-steps must be a multiple).")]
    public int JourneySteps { get; set; }

    [Option("sampling-steps", Default = 50, HelpText = "DDIM steps of the generated queries.")]
    public int SamplingSteps { get; set; }

    [Option("threads", Default = 0, HelpText = "ONNX Runtime intra-op threads; 0 for its default.")]
    public int Threads { get; set; }

    [Option("json", HelpText = "Print the results as JSON.")]
    public bool Json { get; set; }

    /// <inheritdoc/>
    public void Validate()
    {
        OptionChecks.OutputDirectory(Out, "--out");
        OptionChecks.AtLeast(SubsetModels, 1, "--subset-models");
        OptionChecks.Fraction(Alpha, "--alpha", openBelow: true);
        OptionChecks.InRange(Queries, 1, OptionChecks.MaxQueries, "--queries");
        OptionChecks.AtLeast(RemoveTop, 1, "--remove-top");
        OptionChecks.AtLeast(RandomModels, 1, "--random-models");
        OptionChecks.AtLeast(Steps, 1, "--steps");
        OptionChecks.AtLeast(BatchSize, 1, "--batch-size");
        OptionChecks.Positive(LearningRate, "--lr");
        OptionChecks.Fraction(Ema, "--ema");
        OptionChecks.AtLeast(BaseChannels, 1, "--base-channels");
        OptionChecks.AtLeast(TrainThreads, 0, "--train-threads");
        OptionChecks.AtLeast(MeasureTimesteps, 1, "--measure-timesteps");
        OptionChecks.AtLeast(MeasureDraws, 1, "--measure-draws");
        OptionChecks.AtLeast(Timesteps, 1, "--timesteps");
        OptionChecks.AtLeast(NoiseDraws, 1, "--noise-draws");
        OptionChecks.AtLeast(ReferenceModels, 1, "--reference-models");
        if (!System.Text.RegularExpressions.Regex.IsMatch(Point, "^[A-Za-z0-9._-]*$") || Point.StartsWith('.'))
        {
            throw new UserInputException($"--point '{Point}': a setting point's name is letters, digits, '.', '_' and '-' (not starting with '.'), used in folder names");
        }
        OptionChecks.InRange(Dim, 1, OptionChecks.MaxDim, "--dim");
        OptionChecks.Positive(Damping, "--damping");
        OptionChecks.AtLeast(JourneySteps, 1, "--journey-steps");
        OptionChecks.AtLeast(SamplingSteps, 1, "--sampling-steps");
        OptionChecks.AtLeast(Threads, 0, "--threads");
        OptionChecks.AtLeast(SubsetSeeds, 1, "--subset-seeds");
        OptionChecks.InRange(ValidationQueries, 0, OptionChecks.MaxQueries, "--validation-queries");
        foreach (double damping in DampingGrid)
        {
            OptionChecks.Positive(damping, "--damping-grid");
        }
    }

    /// <summary>The command line as typed (set by <see cref="CliApp"/>), recorded with the results.</summary>
    public string CommandLine { get; set; } = "";
}

/// <summary>The two evaluations: <c>EvaluateCommand.Lds.cs</c> and <c>EvaluateCommand.Counterfactual.cs</c>; shared helpers here.</summary>
internal static partial class EvaluateCommand
{
    public static int Run(EvaluateVerb o, CancellationToken cancel) => o.Kind.ToLowerInvariant() switch
    {
        "lds" => RunLds(o, cancel),
        "counterfactual" => RunCounterfactual(o, cancel),
        "lds-report" => RunLdsReport(o),
        "lds-curves" => RunLdsCurves(o),
        _ => throw new UserInputException($"evaluate '{o.Kind}': expected 'lds', 'counterfactual', 'lds-report' or 'lds-curves'"),
    };

    private static TrainingRecipe Recipe(EvaluateVerb o) => new()
    {
        Steps = o.Steps,
        BatchSize = o.BatchSize,
        LearningRate = o.LearningRate,
        EmaDecay = o.Ema,
        BaseChannels = o.BaseChannels,
        Threads = o.TrainThreads,
    };

    /// <summary>
    /// Every setting a result depends on; a rerun with other settings into the same folder is refused, except for the
    /// fields in <paramref name="mayChange"/> (a larger M reuses every model already trained: subset j depends on the seed
    /// and j only), which are updated.
    /// </summary>
    private static void CheckSettings(string outDirectory, object settings, params string[] mayChange)
    {
        Directory.CreateDirectory(outDirectory);
        var path = Path.Combine(outDirectory, "settings.json");
        var json = System.Text.Json.JsonSerializer.Serialize(settings, Core.Models.ModelMetadata.JsonOptions);
        if (File.Exists(path))
        {
            var old = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            var now = System.Text.Json.Nodes.JsonNode.Parse(json)!.AsObject();
            bool changed = false;
            foreach (var (key, value) in now)
            {
                if (!System.Text.Json.Nodes.JsonNode.DeepEquals(old[key], value))
                {
                    if (!mayChange.Contains(key))
                    {
                        throw new UserInputException($"{path}: field '{key}' was {old[key]?.ToJsonString() ?? "absent"} when this evaluation started; now {value?.ToJsonString()}. Use another --out or the same settings.");
                    }
                    changed = true;
                }
            }
            if (!changed)
            {
                return;
            }
        }
        JsonFile.Save(path, settings);
    }

    /// <summary>
    /// A models × <paramref name="perModel"/> matrix of measurements saved at <paramref name="path"/>, computing only the
    /// rows of models not measured before (M may grow between runs; the rows already there are the same models).
    /// </summary>
    private static float[] MeasureModels(string path, int models, int perModel, string label, Func<int, float[]> measure, CancellationToken cancel)
    {
        var cached = TryReadMatrix(path);
        int have = cached is { } c && c.Header.Columns == perModel ? (int)Math.Min(c.Header.Rows, models) : 0;
        var result = new float[(long)models * perModel];
        if (have > 0)
        {
            cached!.Value.Values.AsSpan(0, have * perModel).CopyTo(result);
        }
        if (have == models)
        {
            return result;
        }
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var bar = new ConsoleProgress(label);
        for (int j = have; j < models; j++)
        {
            cancel.ThrowIfCancellationRequested();
            measure(j).CopyTo(result.AsSpan(j * perModel, perModel));
            bar.Report(j + 1 - have, models - have, "models");
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        NpyFormat.WriteMatrix(path, result, models, perModel);
        JsonFile.Save(Path.ChangeExtension(path, ".json"), new { secondsPerModel = watch.Elapsed.TotalSeconds / (models - have) });
        return result;
    }

    /// <summary>
    /// Trains models one after another with one progress line over all their steps. Models trained by an earlier run
    /// report nothing, so the line (and its estimate of the time left) counts from the first model trained in this run.
    /// </summary>
    private sealed class TrainingProgress(string label, int models, int stepsPerModel)
    {
        private readonly ConsoleProgress _bar = new(label);
        private long _first = -1;

        public IProgress<TrainProgress> For(int model) => new SyncProgress<TrainProgress>(p =>
        {
            long start = (long)model * stepsPerModel;
            if (_first < 0)
            {
                _first = start;
            }
            _bar.Report(start + p.Step - _first, ((long)models * stepsPerModel) - _first, $"model {model + 1}/{models}, loss {p.Loss:F4}, {p.MillisecondsPerStep:F0} ms/step");
        });
    }

    /// <summary>Writes the Markdown table beside the JSON results and prints one or the other.</summary>
    private static int Report(EvaluateVerb o, string markdownPath, string table, object result, string summary)
    {
        File.WriteAllText(markdownPath, table);
        if (o.Json)
        {
            Output.WriteJson(result);
        }
        else
        {
            Console.Write(table);
            Console.WriteLine(summary);
        }
        return CliApp.Ok;
    }

    /// <summary>A saved score or loss matrix, or null when it was not written yet.</summary>
    private static (NpyHeader Header, float[] Values)? TryReadMatrix(string path) => File.Exists(path) ? NpyFormat.ReadMatrix(path) : null;

    /// <summary>The evaluations' queries: images generated from seeds 0 … count − 1.</summary>
    private static long[] QuerySeeds(int count) => Enumerable.Range(0, count).Select(q => (long)q).ToArray();
}
