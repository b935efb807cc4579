using CommandLine;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Training.Evaluation;
using OnnxAttribution.Training;

namespace OnnxAttribution.Cli.Verbs;

[Verb("lds", HelpText = "Linear Datamodeling Score: train M random α-subsets S times each (different seeds) and report each method's " +
    "Linear Datamodeling Score on Q test queries against the subsets' mean loss, with a bootstrap 95% interval over queries, " +
    "a permutation test against random (Journey-TRAK also per trajectory step), the noise ceiling of the S seeds, " +
    "and each method's damping chosen beforehand on V validation queries. Resumes after a kill: every trained model and every score file is saved once. " +
    "--report-only writes lds.md again from lds.json; 'lds-curves' tabulates every setting point.")]
internal sealed class LdsVerb : IVerbOptions
{
    [Option("out", Required = true, HelpText = "Evaluation folder (models, stores, scores, results); rerun the same command to continue.")]
    public string Out { get; set; } = "";

    [Option("data", Default = "embedded", HelpText = "training images (the reference model and every subset model train on them).")]
    public string Data { get; set; } = "embedded";

    [Option("subset", Default = "0:1000", HelpText = "which rows of --data are the training set N.")]
    public string Subset { get; set; } = "0:1000";

    [Option("model", HelpText = "attribute this existing model instead of training the reference here. The subset models use the recipe flags, " +
        "so this is only meaningful for a model trained with the same recipe on the same rows.")]
    public string? Model { get; set; }

    [Option("subset-models", Default = 32, HelpText = "M, the number of retrained subset models. Rerunning with a larger M keeps every model already trained.")]
    public int SubsetModels { get; set; }

    [Option("subset-seeds", Default = 3, HelpText = "S, training seeds per subset model; a query's measured output is its mean loss over them, " +
        "and S ≥ 2 gives the noise ceiling. Rerunning with a larger S keeps every model already trained.")]
    public int SubsetSeeds { get; set; }

    [Option("validation-queries", Default = 20, HelpText = "V generated validation queries (seeds 2^32 + 0 … V−1, " +
        "never a test query's seed 0 … Q−1): each method's damping is chosen on them, then applied once to the test queries.")]
    public int ValidationQueries { get; set; }

    [Option("damping-grid", Separator = ',', Default = new[] { 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1 },
        HelpText = "the relative dampings λ tried on the validation queries (methods with a damping: trak, d-trak, das, journey-trak, kfac, ekfac).")]
    public IEnumerable<double> DampingGrid { get; set; } = [];

    [Option("alpha", Default = 0.5, HelpText = "subset size as a fraction of N.")]
    public double Alpha { get; set; }

    [Option("queries", Default = 50, HelpText = "Number of generated (test) queries (seeds 0 … Q−1 of the reference model).")]
    public int Queries { get; set; }

    [Option("methods", Separator = ',', Default = new[] { "trak", "d-trak", "pixel", "random" }, HelpText = "methods to score, comma-separated (see 'featurize --method').")]
    public IEnumerable<string> Methods { get; set; } = [];

    [Option("combinations", Separator = ',', HelpText = "combinations to score after the methods, comma-separated, each two or more of --methods joined by '+' " +
        "(e.g. d-trak+kfac): per query, each method's scores at its chosen λ standardised over the rows and averaged.")]
    public IEnumerable<string> Combinations { get; set; } = [];

    [Option("ensemble", HelpText = "a trained ensemble folder (train-ensemble on the same rows) to score as method 'ensemble'.")]
    public string? Ensemble { get; set; }

    [Option("seed", Default = 0L, HelpText = "Seed of the subsets and of the reference model's training.")]
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

    [Option("condition", Default = "none", HelpText = "Recipe: none; label for class-conditional models (every model trained with the rows' " +
        "labels; test query q generated with and attributed under label q mod 10, validation query v under v mod 10); or text for " +
        "text-conditioned ones (the rows' captions; query q under \"a dark|light <class q mod 10>\"). Needs a named " +
        "(Fashion-MNIST) dataset and methods that attribute conditional models.")]
    public string Condition { get; set; } = "none";

    private IReadOnlyList<string> NamedClasses() => Core.Data.DatasetLocator.ClassNamesOf(Data) is { Count: > 0 } classes ? classes
        : throw new UserInputException($"--condition {Condition}: '{Data}' is not a named dataset whose classes are known (embedded, fashion-mnist)");

    [Option("base", HelpText = "Recipe: every model (the reference and each subset model) is a LoRA fine-tune of this model folder on its rows " +
        "(the papers' LoRA setting: the base trained on other data, --subset the fine-tuning set); the base decides the architecture and condition.")]
    public string? Base { get; set; }

    [Option("lora-rank", Default = 4, HelpText = "Recipe, with --base: the adapters' rank.")]
    public int LoraRank { get; set; }

    [Option("lora-alpha", Default = 4.0, HelpText = "Recipe, with --base: the adapters' output is scaled by alpha / rank.")]
    public double LoraAlpha { get; set; }

    [Option("lora-targets", Default = "conv", HelpText = "Recipe, with --base: conv, linear or all (see 'train --lora-targets').")]
    public string LoraTargets { get; set; } = "conv";

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

    [Option("projector", Default = ProjectorKind.Dense, HelpText = "Methods: dense or factored projection of the gradient methods' features " +
        "(factored: trak, d-trak, das, kfac, ekfac). Give it its own --point.")]
    public ProjectorKind Projector { get; set; }

    [Option("query-timesteps", Default = 0, HelpText = "Methods: the fast query setting scored: queries measured at Q of the K timesteps, spread evenly " +
        "(0: all K; trak, d-trak and das only). Give it its own --point: the stores are the same, the scores are not.")]
    public int QueryTimesteps { get; set; }

    [Option("point", Default = "", HelpText = "name of a setting point of the curves (letters, digits, '.', '_', '-'): " +
        "its stores, scores and results go to stores-NAME/, scores-NAME/ and lds-NAME.json (lds-NAME-R3.json with --reference-models 3), " +
        "beside the unnamed point's stores/, scores/ and lds.json, sharing the models and measured losses; every R shares a point's stores. " +
        "A store built with other --timesteps/--noise-draws/--dim is refused, naming this option.")]
    public string Point { get; set; } = "";

    [Option("reference-models", Default = 1, HelpText = "R, independently trained reference models (the first attributed and generating the queries, " +
        "the others trained with seeds from the stream \"lds reference model\"); a method's scores are the mean of its R stores' scores, " +
        "TRAK's estimator over models. Reference r's stores go to stores-reference-r/ (stores-NAME-reference-r/ with --point NAME), " +
        "the results to lds-R{R}.json. A larger R keeps every model and store already built.")]
    public int ReferenceModels { get; set; }

    [Option("damping", Default = 1e-3, HelpText = "Methods: relative damping λ a store is first built with (the run then chooses λ from --damping-grid on the validation queries).")]
    public double Damping { get; set; }

    [Option("journey-steps", Default = 10, HelpText = "Methods: journey-trak's number of attributed trajectory steps (--sampling-steps must be a multiple).")]
    public int JourneySteps { get; set; }

    [Option("sampling-steps", Default = 50, HelpText = "DDIM steps of the generated queries.")]
    public int SamplingSteps { get; set; }

    [Option("threads", Default = 0, HelpText = "ONNX Runtime intra-op threads; 0 for its default.")]
    public int Threads { get; set; }

    [Option("json", HelpText = "Print the results as JSON.")]
    public bool Json { get; set; }

    [Option("report-only", HelpText = "Only write lds.md (lds-NAME.md for --point NAME) again from the lds.json in --out, e.g. docs/results; nothing is trained or scored.")]
    public bool ReportOnly { get; set; }

    /// <inheritdoc/>
    public void Validate()
    {
        OptionChecks.OutputDirectory(Out, "--out");
        OptionChecks.AtLeast(SubsetModels, 1, "--subset-models");
        OptionChecks.Fraction(Alpha, "--alpha", openBelow: true);
        OptionChecks.InRange(Queries, 1, OptionChecks.MaxQueries, "--queries");
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
        OptionChecks.AtLeast(QueryTimesteps, 0, "--query-timesteps");
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
        if (Base is not null)
        {
            OptionChecks.Lora(LoraRank, LoraAlpha, LoraTargets);
        }
        OptionChecks.InRange(ValidationQueries, 0, OptionChecks.MaxQueries, "--validation-queries");
        foreach (double damping in DampingGrid)
        {
            OptionChecks.Positive(damping, "--damping-grid");
        }
    }

    /// <summary>The command line as typed (set by <see cref="CliApp"/>), recorded with the results.</summary>
    public string CommandLine { get; set; } = "";

    /// <summary>The library's options for this command line.</summary>
    public LdsOptions ToOptions(IEvaluationObserver observer) => new()
    {
        Out = Out,
        Data = Data,
        Subset = Subset,
        Model = Model,
        SubsetModels = SubsetModels,
        SubsetSeeds = SubsetSeeds,
        ValidationQueries = ValidationQueries,
        DampingGrid = DampingGrid.ToList(),
        Alpha = Alpha,
        Queries = Queries,
        Methods = Methods.ToList(),
        Combinations = Combinations.ToList(),
        Ensemble = Ensemble,
        Seed = Seed,
        Recipe = new TrainingRecipe
        {
            Steps = Steps,
            BatchSize = BatchSize,
            LearningRate = LearningRate,
            EmaDecay = Ema,
            BaseChannels = BaseChannels,
            Threads = TrainThreads,
            BaseModel = Base,
            Lora = Base is null ? null : OptionChecks.Lora(LoraRank, LoraAlpha, LoraTargets),
            Classes = Base is not null ? 0 : Condition switch
            {
                "none" or "text" => 0,
                "label" => NamedClasses().Count,
                _ => throw new UserInputException($"--condition is '{Condition}'; expected none, label or text"),
            },
            Text = Base is null && Condition == "text" ? new TextConditionSettings { ClassNames = NamedClasses() } : null,
        },
        MeasureTimesteps = MeasureTimesteps,
        MeasureDraws = MeasureDraws,
        Timesteps = Timesteps,
        NoiseDraws = NoiseDraws,
        Dim = Dim,
        QueryTimesteps = QueryTimesteps,
        Projector = Projector,
        Point = Point,
        ReferenceModels = ReferenceModels,
        Damping = Damping,
        JourneySteps = JourneySteps,
        SamplingSteps = SamplingSteps,
        Threads = Threads,
        CommandLine = CommandLine,
        Observer = observer,
    };
}

[Verb("lds-curves", HelpText = "Every lds*.json in --out (one per setting point of 'lds': K timesteps, noise draws, k, R reference models) as one table, " +
    "lds-curves.md, and a plot of LDS against build cost per training example, lds-curves.png.")]
internal sealed class LdsCurvesVerb : IVerbOptions
{
    [Option("out", Required = true, HelpText = "The evaluation folder of 'lds' runs (or docs/results).")]
    public string Out { get; set; } = "";

    [Option("json", HelpText = "Print the points as JSON.")]
    public bool Json { get; set; }

    /// <inheritdoc/>
    public void Validate() => OptionChecks.Given(Out, "--out");
}

internal static class LdsCommand
{
    public static int Run(LdsVerb o, CancellationToken cancel)
    {
        var options = o.ToOptions(new ConsoleEvaluationObserver());
        return EvaluationOutput.Print(o.ReportOnly ? LdsReportWriter.Report(options) : LdsRun.Run(options, cancel), o.Json);
    }

    public static int RunCurves(LdsCurvesVerb o) => EvaluationOutput.Print(LdsReportWriter.Curves(o.Out), o.Json);
}
