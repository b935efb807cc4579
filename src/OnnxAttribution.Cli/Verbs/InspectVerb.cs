using CommandLine;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Store;

namespace OnnxAttribution.Cli.Verbs;

[Verb("inspect", HelpText = "Describe a feature store: settings, completeness, sizes, whether it is finalized.")]
internal sealed class InspectVerb : IVerbOptions
{
    [Option("store", Required = true)]
    public string Store { get; set; } = "";

    [Option("json")]
    public bool Json { get; set; }

    /// <inheritdoc/>
    public void Validate()
    {
        OptionChecks.Given(Store, "--store");
    }
}

internal static class InspectCommand
{
    public static int Run(InspectVerb o)
    {
        using var store = FeatureStore.Open(o.Store);
        var features = new FileInfo(Path.Combine(o.Store, StoreFiles.Features)).Length;
        var pre = Path.Combine(o.Store, StoreFiles.Preconditioner);
        var info = new
        {
            store = o.Store,
            meta = store.Meta,
            rows = store.Rows,
            k = store.Dim,
            dtype = store.DType,
            featuresBytes = features,
            bytesPerExample = (double)features / Math.Max(1, store.Rows),
            finalized = File.Exists(pre),
            preconditionerBytes = File.Exists(pre) ? new FileInfo(pre).Length : 0,
            kernel = Preconditioner.ReadForm(pre) switch { KernelForm.Primal => "primal", KernelForm.Dual => "dual", _ => null },
            source = StoreSource.TryLoad(o.Store),
        };
        if (o.Json)
        {
            Output.WriteJson(info);
        }
        else
        {
            var m = store.Meta;
            Console.WriteLine($"store      {o.Store}");
            Console.WriteLine($"method     {m.Method} ({m.Measurement}), " +
                $"{m.Timesteps.Count} timesteps [{string.Join(",", m.Timesteps.Take(10))}{(m.Timesteps.Count > 10 ? ",…" : "")}] × {m.NoiseDraws} draws " +
                $"(seed {m.NoiseSeed})");
            Console.WriteLine($"projector  {m.Projector.Kind}, k = {m.Projector.Dim}, seed {m.Projector.Seed}, {string.Join(", ", m.Projector.Settings.Select(kv => $"{kv.Key}={kv.Value}"))}");
            Console.WriteLine($"rows       {store.Rows} complete, {store.DType}; features.npy {features / 1048576.0:F1} MiB ({info.bytesPerExample:F0} bytes per example)");
            Console.WriteLine($"model      vjp.onnx SHA-256 {m.ModelFingerprint[..16]}…; data {m.DatasetFingerprint[..16]}… subset {m.Subset}; shard {m.Shard.Index}/{m.Shard.Count}");
            Console.WriteLine($"finalized  {(info.finalized ? $"yes ({info.kernel} kernel, {info.preconditionerBytes / 1048576.0:F1} MiB preconditioner)" : "no: run 'finalize'")}");
        }
        return CliApp.Ok;
    }
}
