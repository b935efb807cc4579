using CommandLine;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Cli.Verbs;
[Verb("featurize", HelpText = "Compute projected gradient features of training images into a feature store (features.npy + meta.json + done.bitmap). " +
    "Resumable: after a kill, run the same command again. --shard i/n computes one part; 'merge' joins the parts.")]
internal sealed class FeaturizeVerb : SessionVerbOptions, IVerbOptions
{
    [Option("model", Required = true, HelpText = "Model folder (model.json, forward.onnx, vjp.onnx).")]
    public string Model { get; set; } = "";

    [Option("data", Default = "embedded", HelpText = "Training images: embedded, fashion-mnist, a PNG folder or an IDX file.")]
    public string Data { get; set; } = "embedded";

    [Option("subset", Default = "all", HelpText = "Which training images: all, start:end, a list 3,5,9, or @file.")]
    public string Subset { get; set; } = "all";

    [Option("size", HelpText = "Resize images to this size (default: the model's image size).")]
    public int? Size { get; set; }

    [Option("method", Default = "trak", HelpText = "The attribution method the store is for: trak, d-trak, journey-trak, tracin, retrac, das, kfac, ekfac, " +
        "pixel, gradient-cosine, random (ensembles: train-ensemble). trak and d-trak only featurize (then run 'finalize'); " +
        "the others build their whole store.")]
    public string Method { get; set; } = "trak";

    [Option("measurement", HelpText = "Override the method's measurement: loss (the diffusion loss, TRAK's default), square (the squared output norm, D-TRAK's) or mean (the mean output, DAS's).")]
    public MeasurementKind? Measurement { get; set; }

    [Option("damping", HelpText = "Methods other than trak/d-trak (those take it at 'finalize'): λ relative to the mean diagonal of the curvature " +
        "(kfac/ekfac: to each layer's mean eigenvalue; must be > 0). Default: the method's own, chosen on the LDS validation queries: das 1e-2, " +
        "journey-trak 1e-1, kfac 10, ekfac 10.")]
    public double? Damping { get; set; }

    [Option("journey-steps", Default = 10, HelpText = "journey-trak: DDIM steps of the query trajectory attributed (training features at the same timesteps).")]
    public int JourneySteps { get; set; }

    [Option("checkpoints", Separator = ',', HelpText = "tracin/retrac: model folders of saved training checkpoints, comma-separated (learning rates from their model.json).")]
    public IEnumerable<string> Checkpoints { get; set; } = [];

    [Option("method-seed", Default = 0L, HelpText = "Seed of a method's own random choices (random baseline, per-example timesteps of TracIn, the Monte-Carlo Fisher draws of kfac/ekfac).")]
    public long MethodSeed { get; set; }

    [Option("pixel-metric", Default = PixelMetric.Cosine, HelpText = "pixel: cosine (similarity of the pixel vectors) or l2 (negative Euclidean distance).")]
    public PixelMetric PixelMetric { get; set; }

    [Option("preset", Default = StorePreset.Default, HelpText = "The store setting on the quality–cost front (docs/results/presets.md): fast (1 " +
        "timestep, k = 1024, float16: 25 ms queries over HTTP on 60,000 rows), default (10 timesteps, k = 4096, float32) or quality (30 timesteps, " +
        "k = 4096: 3× default's build cost). --timesteps, --dim and --dtype, when given, replace the preset's.")]
    public StorePreset Preset { get; set; }

    [Option("timesteps", HelpText = "K timesteps t = 0, T/K, 2T/K, … (the same for every example and the query, tracin/retrac included). " +
        "Default: the preset's (10).")]
    public int? TimestepsGiven { get; set; }

    /// <summary>K: --timesteps, or the preset's.</summary>
    public int Timesteps => TimestepsGiven ?? StorePresets.Of(Preset).Timesteps;

    [Option("noise-draws", Default = 1, HelpText = "Noise draws per timestep.")]
    public int NoiseDraws { get; set; }

    [Option("noise-seed", Default = 0L)]
    public long NoiseSeed { get; set; }

    [Option("projector", Default = ProjectorKind.Dense, HelpText = "dense (JL projection of the whole gradient) or factored (per-layer Kronecker projection " +
        "of the Conv/Gemm weight gradients). kfac/ekfac always use factored.")]
    public ProjectorKind Projector { get; set; }

    [Option("distribution", Default = ProjectionKind.Rademacher, HelpText = "Projection entries: rademacher or gaussian.")]
    public ProjectionKind Distribution { get; set; }

    [Option("dim", HelpText = "Feature dimension k (factored: layers × side², the largest not above it). Default: the preset's (4096).")]
    public int? DimGiven { get; set; }

    /// <summary>k: --dim, or the preset's.</summary>
    public int Dim => DimGiven ?? StorePresets.Of(Preset).Dim;

    [Option("projection-seed", Default = 0L)]
    public long ProjectionSeed { get; set; }

    [Option("dtype", HelpText = "float32 or float16 (half the size; same top-k in our checks). Default: the preset's (float32).")]
    public StoreDType? DTypeGiven { get; set; }

    /// <summary>The rows' type: --dtype, or the preset's.</summary>
    public StoreDType DType => DTypeGiven ?? StorePresets.Of(Preset).DType;

    [Option("out", Required = true, HelpText = "Store folder.")]
    public string Out { get; set; } = "";

    [Option("shard", HelpText = "i/n: compute only the i-th of n contiguous parts (0-based), e.g. 3/8.")]
    public string? Shard { get; set; }

    [Option("batch-size", Default = 16, HelpText = "Examples read and projected together (does not change the result: the gradient graph runs one example at a time, its timesteps as the batch).")]
    public int BatchSize { get; set; }

    [Option("json", HelpText = "Print the store's meta as JSON when done.")]
    public bool Json { get; set; }

    /// <inheritdoc/>
    public void Validate()
    {
        OptionChecks.Given(Model, "--model");
        if (Size is int size)
        {
            OptionChecks.InRange(size, 1, OptionChecks.MaxImageSize, "--size");
        }
        if (Damping is { } damping)
        {
            OptionChecks.Positive(damping, "--damping");
        }
        OptionChecks.AtLeast(JourneySteps, 1, "--journey-steps");
        OptionChecks.AtLeast(Timesteps, 1, "--timesteps");
        OptionChecks.AtLeast(NoiseDraws, 1, "--noise-draws");
        OptionChecks.InRange(Dim, 1, OptionChecks.MaxDim, "--dim");
        OptionChecks.InRange(BatchSize, 1, OptionChecks.MaxBatchSize, "--batch-size");
        ValidateSession();
        OptionChecks.OutputDirectory(Out, "--out");
    }
}

internal static class FeaturizeCommand
{
    public static int Run(FeaturizeVerb o, CancellationToken cancel)
    {
        var shard = ParseShard(o.Shard);
        var model = ModelDirectory.Open(o.Model);
        int size = o.Size ?? model.Metadata.ImageSize;
        var data = new Core.Data.DatasetLocator().Load(o.Data, o.Subset, size);
        var schedule = model.CreateSchedule();
        var method = AttributionMethods.Find(o.Method);
        if (method is not TrakMethod trak)
        {
            RequireUsed(o, method, method.SettingsUsed);
            return BuildMethod(o, method, data, size, cancel);
        }
        // trak and d-trak take their damping at 'finalize'.
        RequireUsed(o, method, [.. method.SettingsUsed.Where(s => s != nameof(MethodSettings.Damping))]);
        var options = new FeaturizeOptions
        {
            ModelDirectory = o.Model,
            Data = data,
            Subset = o.Subset,
            Plan = new FeaturizationPlan(FeaturizationPlan.Evenly(schedule.Timesteps, o.Timesteps), o.NoiseDraws, o.NoiseSeed, o.Measurement ?? trak.Measurement),
            Projection = new ProjectionSettings(o.Projector, o.Distribution, o.Dim, o.ProjectionSeed),
            DType = o.DType,
            Method = trak.Name,
            OutDirectory = o.Out,
            Shard = shard,
            BatchSize = o.BatchSize,
            Session = o.Session,
        };
        var bar = new ConsoleProgress("featurize");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // The rate is the steady one: from the end of the first batch on, so the set-up (sessions, the first run's
        // allocations) does not count; until a second batch ends it is the rate so far.
        long first = -1, steadyFrom = -1;
        double steadySince = 0;
        var progress = new SyncProgress<(long Done, long Total)>(p =>
        {
            double now = clock.Elapsed.TotalSeconds;
            if (first < 0)
            {
                first = p.Done;
            }
            else if (steadyFrom < 0 && p.Done > first)
            {
                (steadyFrom, steadySince) = (p.Done, now);
            }
            double rate = steadyFrom >= 0 && p.Done > steadyFrom
                ? (p.Done - steadyFrom) / Math.Max(now - steadySince, 1e-9)
                : (p.Done - first) / Math.Max(now, 1e-9);
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
                Console.WriteLine($"store {o.Out}: {rows} rows × k = {store.Dim} ({store.DType}), {store.Meta.Method}, " +
                    $"{options.Plan.Timesteps.Count} timesteps × {options.Plan.NoiseDraws} draws; {seconds:F1} s this run");
            }
        }
        return CliApp.Ok;
    }

    /// <summary>The method settings the options give.</summary>
    private static MethodSettings SettingsOf(FeaturizeVerb o) => new()
    {
        Measurement = o.Measurement,
        Timesteps = o.Timesteps,
        NoiseDraws = o.NoiseDraws,
        NoiseSeed = o.NoiseSeed,
        Projector = o.Projector,
        Distribution = o.Distribution,
        Dim = o.Dim,
        ProjectionSeed = o.ProjectionSeed,
        DType = o.DType,
        Damping = o.Damping,
        BatchSize = o.BatchSize,
        JourneySteps = o.JourneySteps,
        Checkpoints = o.Checkpoints.ToList(),
        Seed = o.MethodSeed,
        PixelMetric = o.PixelMetric,
    };

    /// <summary>Refuses an option set away from its default that <paramref name="method"/> would ignore, naming the flag.</summary>
    private static void RequireUsed(FeaturizeVerb o, IAttributionMethod method, IReadOnlyCollection<string> used)
    {
        try
        {
            SettingsOf(o).RequireUsedBy(method, used);
        }
        catch (SettingException e)
        {
            string flag = e.Setting switch
            {
                nameof(MethodSettings.Seed) => "--method-seed",
                nameof(MethodSettings.DType) => "--dtype",
                nameof(MethodSettings.Damping) when method is TrakMethod => "--damping (trak and d-trak take it at 'finalize --damping')",
                _ => "--" + e.KebabName,
            };
            throw new UserInputException($"{flag}: method {method.Name} does not use it; leave it out", e);
        }
    }

    /// <summary>Builds a whole method store (every method but trak/d-trak, whose featurize and finalize are separate verbs).</summary>
    private static int BuildMethod(FeaturizeVerb o, IAttributionMethod method, Core.Data.ImageDataset data, int size, CancellationToken cancel)
    {
        if (o.Shard is not null)
        {
            throw new UserInputException($"--shard splits trak/d-trak featurization only; method {method.Name} builds its store in one run (it resumes after a kill)");
        }
        var bars = new Dictionary<string, ConsoleProgress>(StringComparer.Ordinal);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var request = new MethodBuildRequest
        {
            ModelDirectory = o.Model,
            Data = data,
            Source = new StoreSource(o.Model, o.Data, o.Subset, size),
            OutDirectory = o.Out,
            Settings = SettingsOf(o),
            Session = o.Session,
            Progress = new SyncProgress<MethodProgress>(p =>
            {
                if (!bars.TryGetValue(p.Stage, out var bar))
                {
                    bars[p.Stage] = bar = new ConsoleProgress($"{method.Name}: {p.Stage}");
                }
                bar.Report(p.Done, p.Total, "");
            }),
        };
        AttributionMethods.RequireConditionSupport(method, request.ModelDirectory);
        method.Build(request, cancel);
        double seconds = clock.Elapsed.TotalSeconds;
        if (o.Json)
        {
            Output.WriteJson(new { store = o.Out, method = method.Name, manifest = MethodManifest.TryLoad(o.Out), seconds });
        }
        else
        {
            Console.WriteLine($"store {o.Out}: method {method.Name} over {data.Count} training images; {seconds:F1} s this run");
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
