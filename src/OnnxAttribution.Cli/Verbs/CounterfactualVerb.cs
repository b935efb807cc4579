using CommandLine;
using OnnxAttribution.Training.Evaluation;

namespace OnnxAttribution.Cli.Verbs;

[Verb("counterfactual", HelpText = "Remove-and-retrain: for each store, remove each query's top-k attributed images, retrain, " +
    "regenerate from the same noise, and compare with removing k random images. The stores' model must record its training (model.json); " +
    "the retrained models repeat it. Resumes after a kill: every retrained model is saved once.")]
internal sealed class CounterfactualVerb : IVerbOptions
{
    [Option("out", Required = true, HelpText = "Evaluation folder (retrained models, results); rerun the same command to continue.")]
    public string Out { get; set; } = "";

    [Option("store", Required = true, HelpText = "the method stores whose top-k are removed, comma-separated, all on one model " +
        "(which must record its training recipe in model.json); they share the random removals.")]
    public string? Store { get; set; }

    [Option("remove-top", Default = 50, HelpText = "k, how many top-attributed training images to remove per query.")]
    public int RemoveTop { get; set; }

    [Option("random-models", Default = 3, HelpText = "models retrained without k random images (shared by all queries).")]
    public int RandomModels { get; set; }

    [Option("queries", Default = 50, HelpText = "Number of generated queries (seeds 0 … Q−1 of the stores' model).")]
    public int Queries { get; set; }

    [Option("seed", Default = 0L, HelpText = "Seed of the random removals.")]
    public long Seed { get; set; }

    [Option("sampling-steps", Default = 50, HelpText = "DDIM steps of the generated queries.")]
    public int SamplingSteps { get; set; }

    [Option("threads", Default = 0, HelpText = "ONNX Runtime intra-op threads; 0 for its default.")]
    public int Threads { get; set; }

    [Option("train-threads", Default = 0, HelpText = "TorchSharp threads per training; 0 for its default.")]
    public int TrainThreads { get; set; }

    [Option("json", HelpText = "Print the results as JSON.")]
    public bool Json { get; set; }

    /// <inheritdoc/>
    public void Validate()
    {
        OptionChecks.OutputDirectory(Out, "--out");
        OptionChecks.Given(Store ?? "", "--store");
        OptionChecks.AtLeast(RemoveTop, 1, "--remove-top");
        OptionChecks.AtLeast(RandomModels, 1, "--random-models");
        OptionChecks.InRange(Queries, 1, OptionChecks.MaxQueries, "--queries");
        OptionChecks.AtLeast(SamplingSteps, 1, "--sampling-steps");
        OptionChecks.AtLeast(Threads, 0, "--threads");
        OptionChecks.AtLeast(TrainThreads, 0, "--train-threads");
    }

    /// <summary>The library's options for this command line.</summary>
    public CounterfactualOptions ToOptions(IEvaluationObserver observer) => new()
    {
        Out = Out,
        Stores = (Store ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
        RemoveTop = RemoveTop,
        RandomModels = RandomModels,
        Queries = Queries,
        Seed = Seed,
        SamplingSteps = SamplingSteps,
        Threads = Threads,
        TrainThreads = TrainThreads,
        Observer = observer,
    };
}

internal static class CounterfactualCommand
{
    public static int Run(CounterfactualVerb o, CancellationToken cancel) =>
        EvaluationOutput.Print(CounterfactualRun.Run(o.ToOptions(new ConsoleEvaluationObserver()), cancel), o.Json);
}
