using CommandLine;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Store;

namespace OnnxAttribution.Cli.Verbs;

[Verb("merge", HelpText = "Join the shards of a featurization (--shard i/n) into one store, byte-identical to a single run.")]
internal sealed class MergeVerb : IVerbOptions
{
    [Option("shards", Required = true, Separator = ',', HelpText = "The shard store folders, comma-separated.")]
    public IEnumerable<string> Shards { get; set; } = [];

    [Option("out", Required = true)]
    public string Out { get; set; } = "";

    /// <inheritdoc/>
    public void Validate()
    {
        if (!Shards.Any())
        {
            throw new UserInputException("--shards: give the shard store folders, comma-separated");
        }
        OptionChecks.OutputDirectory(Out, "--out");
    }
}

internal static class MergeCommand
{
    public static int Run(MergeVerb o)
    {
        var shards = o.Shards.ToList();
        using var store = FeatureStoreMerge.Merge(shards, o.Out);
        if (StoreSource.TryLoad(shards[0]) is { } source)
        {
            source.Save(o.Out);
        }
        Console.WriteLine($"merged {shards.Count} shards into {o.Out}: {store.Rows} rows × k = {store.Dim}");
        return CliApp.Ok;
    }
}
