using CommandLine;
using OnnxAttribution.Core;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Projection;
using OnnxAttribution.Core.Runtime;
using OnnxAttribution.Core.Store;

namespace OnnxAttribution.Cli.Verbs;

[Verb("featurize", HelpText = "Compute projected gradient features of training images into a feature store (features.npy + meta.json + done.bitmap). Resumable: after a kill, run the same command again. --shard i/n computes one part; 'merge' joins the parts.")]
internal sealed class FeaturizeVerb
{
    [Option("model", Required = true, HelpText = "Model folder (model.json, forward.onnx, vjp.onnx).")]
    public string Model { get; set; } = "";

    [Option("data", Default = "embedded", HelpText = "Training images: embedded, fashion-mnist, a PNG folder or an IDX file.")]
    public string Data { get; set; } = "embedded";

    [Option("subset", Default = "all", HelpText = "Which training images: all, start:end, a list 3,5,9, or @file.")]
    public string Subset { get; set; } = "all";

    [Option("size", HelpText = "Resize images to this size (default: the model's image size).")]
    public int? Size { get; set; }

    [Option("measurement", Default = MeasurementKind.Loss, HelpText = "loss (TRAK: the diffusion loss) or square (D-TRAK: the squared output norm).")]
    public MeasurementKind Measurement { get; set; }

    [Option("timesteps", Default = 10, HelpText = "K timesteps t = 0, T/K, 2T/K, … (the same for every example and the query).")]
    public int Timesteps { get; set; }

    [Option("noise-draws", Default = 1, HelpText = "Noise draws per timestep.")]
    public int NoiseDraws { get; set; }

    [Option("noise-seed", Default = 0L)]
    public long NoiseSeed { get; set; }

    [Option("projector", Default = ProjectorKind.Dense, HelpText = "dense (JL projection of the whole gradient) or factored (per-layer Kronecker projection of the Conv/Gemm weight gradients).")]
    public ProjectorKind Projector { get; set; }

    [Option("distribution", Default = ProjectionKind.Rademacher, HelpText = "Projection entries: rademacher or gaussian.")]
    public ProjectionKind Distribution { get; set; }

    [Option("dim", Default = 4096, HelpText = "Feature dimension k (factored: layers × side², the largest not above it).")]
    public int Dim { get; set; }

    [Option("projection-seed", Default = 0L)]
    public long ProjectionSeed { get; set; }

    [Option("dtype", Default = StoreDType.Float32, HelpText = "float32 or float16 (half the size; same top-k in our checks).")]
    public StoreDType DType { get; set; }

    [Option("out", Required = true, HelpText = "Store folder.")]
    public string Out { get; set; } = "";

    [Option("shard", HelpText = "i/n: compute only the i-th of n contiguous parts (0-based), e.g. 3/8.")]
    public string? Shard { get; set; }

    [Option("batch-size", Default = 16, HelpText = "Examples per gradient-graph call (does not change the result).")]
    public int BatchSize { get; set; }

    [Option("threads", Default = 0, HelpText = "ONNX Runtime intra-op threads; 0 for its default.")]
    public int Threads { get; set; }

    [Option("device", Default = ExecutionDevice.Cpu, HelpText = "cpu or cuda.")]
    public ExecutionDevice Device { get; set; }

    [Option("json", HelpText = "Print the store's meta as JSON when done.")]
    public bool Json { get; set; }
}

internal static class FeaturizeCommand
{
    public static int Run(FeaturizeVerb o, CancellationToken cancel)
    {
        var shard = ParseShard(o.Shard);
        var model = ModelDirectory.Open(o.Model);
        int size = o.Size ?? model.Metadata.ImageSize;
        var data = TrainCommand.LoadDataset(o.Data, o.Subset, size);
        var schedule = model.CreateSchedule();
        var options = new FeaturizeOptions
        {
            ModelDirectory = o.Model,
            Data = data,
            Subset = o.Subset,
            Plan = new FeaturizationPlan(FeaturizationPlan.Evenly(schedule.Timesteps, o.Timesteps), o.NoiseDraws, o.NoiseSeed, o.Measurement),
            Projection = new ProjectionSettings(o.Projector, o.Distribution, o.Dim, o.ProjectionSeed),
            DType = o.DType,
            Method = o.Measurement == MeasurementKind.Loss ? "trak" : "d-trak",
            OutDirectory = o.Out,
            Shard = shard,
            BatchSize = o.BatchSize,
            Session = new SessionSettings(o.Device, o.Threads),
        };
        var bar = new ConsoleProgress("featurize");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long first = -1;
        var progress = new SyncProgress<(long Done, long Total)>(p =>
        {
            if (first < 0)
            {
                first = p.Done;
            }
            double rate = (p.Done - first) / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
            bar.Report(p.Done, p.Total, $"rows, {rate * options.Plan.Pairs:F1} example×timesteps/s");
        });
        using (var store = TrakEngine.Featurize(options, progress, cancel))
        {
            new StoreSource(o.Model, o.Data, o.Subset, size).Save(o.Out);
            long rows = store.Rows;
            double seconds = clock.Elapsed.TotalSeconds;
            if (o.Json)
            {
                Output.WriteJson(new { store = o.Out, meta = store.Meta, seconds });
            }
            else
            {
                Console.WriteLine($"store {o.Out}: {rows} rows × k = {store.Dim} ({store.DType}), {store.Meta.Method}, {options.Plan.Timesteps.Count} timesteps × {options.Plan.NoiseDraws} draws; {seconds:F1} s this run");
            }
        }
        return CliApp.Ok;
    }

    public static ShardSpec ParseShard(string? text)
    {
        if (text is null)
        {
            return ShardSpec.Whole;
        }
        var parts = text.Split('/');
        if (parts.Length != 2 || !int.TryParse(parts[0], out int i) || !int.TryParse(parts[1], out int n) || n < 1 || i < 0 || i >= n)
        {
            throw new UserInputException($"--shard '{text}': expected i/n with 0 ≤ i < n, e.g. 3/8");
        }
        return new ShardSpec(i, n);
    }
}

[Verb("finalize", HelpText = "Accumulate ΦᵀΦ in float64 over a complete store, factorise ΦᵀΦ + λI (Cholesky) and write preconditioner.bin beside it.")]
internal sealed class FinalizeVerb
{
    [Option("store", Required = true)]
    public string Store { get; set; } = "";

    [Option("damping", Default = 1e-3, HelpText = "λ relative to the mean diagonal of ΦᵀΦ.")]
    public double Damping { get; set; }

    [Option("json")]
    public bool Json { get; set; }
}

internal static class FinalizeCommand
{
    public static int Run(FinalizeVerb o)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var bar = new ConsoleProgress("finalize: ΦᵀΦ");
        var pre = TrakEngine.Finalize(o.Store, o.Damping, new SyncProgress<(long Done, long Total)>(p => bar.Report(p.Done, p.Total, "rows")));
        var result = new { store = o.Store, k = pre.Dim, relativeDamping = pre.RelativeDamping, lambda = pre.Damping, seconds = clock.Elapsed.TotalSeconds };
        if (o.Json)
        {
            Output.WriteJson(result);
        }
        else
        {
            Console.WriteLine($"finalized {o.Store}: k = {pre.Dim}, λ = {pre.Damping:G4} ({pre.RelativeDamping:G3} × mean diagonal), {result.seconds:F1} s");
        }
        return CliApp.Ok;
    }
}

[Verb("merge", HelpText = "Join the shards of a featurization (--shard i/n) into one store, byte-identical to a single run.")]
internal sealed class MergeVerb
{
    [Option("shards", Required = true, Separator = ',', HelpText = "The shard store folders, comma-separated.")]
    public IEnumerable<string> Shards { get; set; } = [];

    [Option("out", Required = true)]
    public string Out { get; set; } = "";
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
