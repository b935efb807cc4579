using CommandLine;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Store;

namespace OnnxAttribution.Cli.Verbs;

[Verb("verify", HelpText = "Check a store fully: every chunk of features.npy against checksums.json, every row finite, " +
    "every derived file (preconditioner.bin, losses.npy, …) against its checksum, the preconditioner finite and built from these features, " +
    "and the model files against meta.json. Exit 0 when all pass, 3 naming the file and rows when one fails. " +
    "A method store's feature stores (subfolders) are each checked.")]
internal sealed class VerifyVerb : IVerbOptions
{
    [Option("store", Required = true, HelpText = "The store folder (or a method store holding feature stores in subfolders).")]
    public string Store { get; set; } = "";

    [Option("model", HelpText = "Model folder to check the recorded model files against (default: the one in the store's source.json when it exists).")]
    public string? Model { get; set; }

    [Option("json")]
    public bool Json { get; set; }

    public void Validate()
    {
        OptionChecks.Given(Store, "--store");
        if (Model is not null)
        {
            OptionChecks.Given(Model, "--model");
        }
    }
}

internal static class VerifyCommand
{
    /// <summary>The feature stores <c>--store</c> names: the folder itself, or the subfolders of a method store, in name order.</summary>
    /// <exception cref="UserInputException">The folder is missing or holds no store.</exception>
    public static List<string> StoreFolders(string store)
    {
        if (!Directory.Exists(store))
        {
            throw new UserInputException($"--store {store}: folder not found");
        }
        var stores = File.Exists(Path.Combine(store, StoreFiles.Meta)) ? [store]
            : Directory.EnumerateDirectories(store).Where(d => File.Exists(Path.Combine(d, StoreFiles.Meta))).Order(StringComparer.Ordinal).ToList();
        if (stores.Count == 0)
        {
            throw new UserInputException($"--store {store}: no {StoreFiles.Meta} in it or its subfolders: not a store");
        }
        return stores;
    }

    public static int Run(VerifyVerb o)
    {
        var stores = StoreFolders(o.Store);
        string? model = o.Model;
        if (model is not null && !Directory.Exists(model))
        {
            throw new UserInputException($"--model {model}: folder not found");
        }
        if (model is null && stores[0] == o.Store && StoreSource.TryLoad(o.Store)?.ModelDirectory is { } source && Directory.Exists(source))
        {
            model = source;
        }
        var results = new List<StoreVerification>();
        foreach (string dir in stores)
        {
            var bar = new ConsoleProgress($"verify {dir}");
            results.Add(StoreVerifier.Verify(dir, model, new SyncProgress<(long Done, long Total)>(p => bar.Report(p.Done, p.Total, "chunks"))));
        }
        bool ok = results.All(r => r.Ok);
        if (o.Json)
        {
            Output.WriteJson(new { store = o.Store, model, ok, stores = results.Select(r => new { directory = r.Directory, ok = r.Ok, checks = r.Checks }) });
        }
        else
        {
            foreach (var check in results.SelectMany(r => r.Checks))
            {
                Console.WriteLine($"{(check.Ok ? "ok  " : "FAIL")}  {check.File}  {check.Check}: {check.Detail}");
            }
            Console.WriteLine(ok ? $"verify: {o.Store} passed every check{(model is null ? " (model files not checked: pass --model)" : "")}"
                : $"verify: {o.Store} FAILED {results.Sum(r => r.Checks.Count(c => !c.Ok))} check(s)");
        }
        return ok ? CliApp.Ok : CliApp.CheckFailed;
    }
}
