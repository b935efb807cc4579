using CommandLine;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution;

namespace OnnxAttribution.Cli.Verbs;

[Verb("append", HelpText = "Add training images to a trak or d-trak store without featurizing its rows again: only the new rows are featurized " +
    "(with the store's own model, timesteps, noise and projection), ΦᵀΦ and the preconditioner are updated, and the store gets a new version. " +
    "The appended store answers as one built on all rows at once. Resumable: after a kill, run the same command again.")]
internal sealed class AppendVerb : SessionVerbOptions, IVerbOptions
{
    [Option("store", Required = true, HelpText = "The store folder.")]
    public string Store { get; set; } = "";

    [Option("data", Required = true, HelpText = "The new training images: embedded, fashion-mnist, a PNG folder or an IDX file (resized to the store's image size).")]
    public string Data { get; set; } = "";

    [Option("subset", Default = "all", HelpText = "Which of them: all, start:end, a list 3,5,9, or @file.")]
    public string Subset { get; set; } = "all";

    [Option("model", HelpText = "The model folder (default: the store's source.json); it must be the store's model.")]
    public string? Model { get; set; }

    [Option("by", HelpText = "Who asks (recorded in the store's history; default: the user name).")]
    public string? By { get; set; }

    [Option("batch-size", Default = 16, HelpText = "Examples read and projected together (does not change the result).")]
    public int BatchSize { get; set; }

    [Option("json", HelpText = "Print the new version as JSON.")]
    public bool Json { get; set; }

    /// <inheritdoc/>
    public void Validate()
    {
        OptionChecks.Given(Store, "--store");
        OptionChecks.Given(Data, "--data");
        OptionChecks.InRange(BatchSize, 1, OptionChecks.MaxBatchSize, "--batch-size");
        ValidateSession();
    }
}

internal static class AppendCommand
{
    public static int Run(AppendVerb o, CancellationToken cancel)
    {
        var source = StoreSource.TryLoad(o.Store)
            ?? throw new UserInputException($"{Path.Combine(o.Store, OnnxAttribution.Store.StoreFiles.Source)} not found: --store {o.Store} is not a store made by featurize");
        var data = new Core.Data.DatasetLocator().Load(o.Data, o.Subset, source.ImageSize);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var bar = new ConsoleProgress("append: featurize new rows");
        var version = StoreUpdate.Append(new AppendRequest
        {
            StoreDirectory = o.Store,
            Data = data,
            DataName = o.Data,
            Subset = o.Subset,
            ModelDirectory = o.Model,
            By = o.By,
            BatchSize = o.BatchSize,
            Session = o.Session,
        }, new SyncProgress<(long Done, long Total)>(p => bar.Report(p.Done, p.Total, "rows")), cancel);
        StoreVersionOutput.Write(o.Store, version, clock.Elapsed.TotalSeconds, o.Json);
        return CliApp.Ok;
    }
}
