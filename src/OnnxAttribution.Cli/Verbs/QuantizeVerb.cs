using CommandLine;
using OnnxAttribution.Primitives;
using OnnxAttribution.Store;

namespace OnnxAttribution.Cli.Verbs;

[Verb("quantize", HelpText = "Write an 8-bit copy of a store's rows (features.i8.npy: each row as int8 times a per-row scale in " +
    "features.i8scale.npy), a quarter of float32's bytes and half of float16's. Top-k queries then scan the copy and re-score its " +
    "candidates from the exact rows, with a proven error bound: the same rows and scores as scanning the exact rows, for less to read. " +
    "The copy is recorded in checksums.json ('verify' checks it); 'append' and 'remove' delete it: run quantize again after them. " +
    "'attribute --exact' (or the server's Store:Exact setting) ignores the copy.")]
internal sealed class QuantizeVerb : IVerbOptions
{
    [Option("store", Required = true, HelpText = "The completed store folder (or a method store holding feature stores in subfolders).")]
    public string Store { get; set; } = "";

    [Option("delete", HelpText = "Delete the 8-bit copy instead of writing one (queries read the exact rows).")]
    public bool Delete { get; set; }

    public void Validate() => OptionChecks.Given(Store, "--store");
}

internal static class QuantizeCommand
{
    public static int Run(QuantizeVerb o)
    {
        var stores = VerifyCommand.StoreFolders(o.Store);
        foreach (string dir in stores)
        {
            if (o.Delete)
            {
                using (StoreLock.Acquire(dir, "quantize --delete"))
                {
                    StoreQuantizer.Delete(dir);
                }
                Console.WriteLine($"quantize: {dir}: 8-bit copy deleted");
                continue;
            }
            var bar = new ConsoleProgress($"quantize {dir}");
            long bytes = StoreQuantizer.Quantize(dir, new SyncProgress<(long Done, long Total)>(p => bar.Report(p.Done, p.Total, "rows")));
            Console.WriteLine($"quantize: {dir}: wrote {StoreFiles.QuantizedFeatures} ({bytes / 1e6:F1} MB) and {StoreFiles.QuantizedScales}");
        }
        return CliApp.Ok;
    }
}
