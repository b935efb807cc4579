using CommandLine;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Data;

namespace OnnxAttribution.Cli.Verbs;

[Verb("remove", HelpText = "Take training rows out of every answer of a trak or d-trak store (a takedown or privacy request): their features are " +
    "erased (overwritten with zeros in a new file), ΦᵀΦ and the preconditioner are computed again without them, and the removal (rows, reason, " +
    "who, when) is a new version in the store's history. The store then answers as one built without those rows.")]
internal sealed class RemoveVerb : IVerbOptions
{
    [Option("store", Required = true, HelpText = "The store folder.")]
    public string Store { get; set; } = "";

    [Option("rows", Required = true, HelpText = "The rows to remove, as answers number them: a list 3,5,9, a range start:end, or @file.")]
    public string Rows { get; set; } = "";

    [Option("reason", Required = true, HelpText = "Why (recorded in the store's history), e.g. \"takedown request #123\".")]
    public string Reason { get; set; } = "";

    [Option("by", HelpText = "Who asks (recorded in the store's history; default: the user name).")]
    public string? By { get; set; }

    [Option("json", HelpText = "Print the new version as JSON.")]
    public bool Json { get; set; }

    /// <inheritdoc/>
    public void Validate()
    {
        OptionChecks.Given(Store, "--store");
        OptionChecks.Given(Rows, "--rows");
        OptionChecks.Given(Reason, "--reason");
    }
}

internal static class RemoveCommand
{
    public static int Run(RemoveVerb o)
    {
        var meta = OnnxAttribution.Store.StoreMeta.Load(Path.Combine(o.Store, OnnxAttribution.Store.StoreFiles.Meta));
        IReadOnlyList<int> rows;
        try
        {
            rows = SubsetSpec.Parse(o.Rows).Resolve(checked((int)meta.Rows));
        }
        catch (UserInputException e)
        {
            throw new UserInputException($"--rows {o.Rows}: {e.Message}", e);
        }
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var bar = new ConsoleProgress("remove: ΦᵀΦ");
        var version = StoreUpdate.Remove(new RemoveRequest { StoreDirectory = o.Store, Rows = rows.Select(r => (long)r).ToList(), Reason = o.Reason, By = o.By },
            new SyncProgress<(long Done, long Total)>(p => bar.Report(p.Done, p.Total, "rows")));
        StoreVersionOutput.Write(o.Store, version, clock.Elapsed.TotalSeconds, o.Json);
        return CliApp.Ok;
    }
}
