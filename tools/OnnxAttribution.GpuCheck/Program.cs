using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using OnnxAttribution;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;
using OnnxAttribution.Tools;

// Usage: OnnxAttribution.GpuCheck <model dir> <work dir> [--device cuda|cpu] [--reduce host|device] [--rows N] [--featurize-rows N] [--json FILE]
// The GPU machine's checks and benchmarks in one self-contained program (that machine has no .NET SDK; tools/gpu-check.sh
// publishes and runs it): the CUDA results against the CPU's, then the speeds docs/guides/gpu.md asks for. Each step prints a line
// and goes into the JSON; a failed step records its error and the rest still run. Exit 0 when every check agreed.
// --device cpu runs the same steps on the CPU provider (to try the program where there is no GPU); --reduce device then runs the
// GPU's way of featurizing there (pairs summed and projected in the graph; the default on CUDA).
if (args.Length < 2)
{
    Console.Error.WriteLine("usage: OnnxAttribution.GpuCheck <model dir> <work dir> [--device cuda|cpu] [--reduce host|device] [--rows N] [--featurize-rows N] [--json FILE]");
    return 2;
}
string modelDir = args[0], work = args[1];
string Option(string name, string fallback) => Array.IndexOf(args, name) is int at and >= 0 && at + 1 < args.Length ? args[at + 1] : fallback;
var device = Option("--device", "cuda") == "cpu" ? ExecutionDevice.Cpu : ExecutionDevice.Cuda;
long bigRows = long.Parse(Option("--rows", "1000000"), CultureInfo.InvariantCulture);
int featurizeRows = int.Parse(Option("--featurize-rows", "256"), CultureInfo.InvariantCulture);
string jsonPath = Option("--json", Path.Combine(work, "gpu-check.json"));
Directory.CreateDirectory(work);

var reduction = Option("--reduce", "auto") switch { "host" => GradientReduction.Host, "device" => GradientReduction.Device, _ => GradientReduction.Auto };
var gpu = new SessionSettings(device) { Reduction = reduction };
var cpu = SessionSettings.Default;
var results = new Dictionary<string, object>
{
    ["device"] = device.ToString().ToLowerInvariant(),
    ["reduction"] = gpu.ResolvedReduction.ToString().ToLowerInvariant(),
    ["machine"] = $"{Environment.ProcessorCount} cores",
    ["started"] = DateTime.UtcNow.ToString("u", CultureInfo.InvariantCulture),
};
bool agreed = true;
var indented = new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
var oneLine = new JsonSerializerOptions { Encoder = indented.Encoder };

void Step(string name, Func<Dictionary<string, object>> run)
{
    var clock = Stopwatch.StartNew();
    try
    {
        var found = run();
        found["seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 2);
        results[name] = found;
        Console.WriteLine($"{name}: {JsonSerializer.Serialize(found, oneLine)}");
        if (found.TryGetValue("agrees", out var a) && a is false)
        {
            agreed = false;
        }
    }
    catch (Exception e)
    {
        agreed = false;
        results[name] = new Dictionary<string, object> { ["error"] = e.ToString() };
        Console.WriteLine($"{name}: FAILED {e.GetType().Name}: {e.Message}");
    }
    File.WriteAllText(jsonPath, JsonSerializer.Serialize(results, indented));
}

Step("libraries", () =>
{
    var missing = OrtSessions.MissingLibraries(name => System.Runtime.InteropServices.NativeLibrary.TryLoad(name, out _));
    return new() { ["cudaBuild"] = OrtSessions.CudaBuild, ["missing"] = missing, ["agrees"] = device == ExecutionDevice.Cpu || missing.Count == 0 };
});

// 1. The scan: float16 rows on the device (resident, then streamed) against the SIMD scan on the CPU.
Step("scan-agreement", () =>
{
    string dir = Path.Combine(work, "scan-20000x256");
    var meta = SyntheticStore.Meta(20_000, 256, StoreDType.Float16);
    SyntheticStore.Create(dir, meta);
    using var store = FeatureStore.Open(dir, meta);
    var queries = Queries(16, 256, 3);
    var expected = store.TopK(queries, 16, 10);
    var found = new Dictionary<string, object>();
    foreach (bool resident in new[] { true, false })
    {
        using var scan = OrtStoreScan.Open(store, gpu, resident, chunkBytes: 4L << 20);
        var top = scan.TopK(queries, 16, 10);
        int shared = Enumerable.Range(0, 16).Sum(q => top[q].Indices.Intersect(expected[q].Indices).Count());
        double worst = Enumerable.Range(0, 16).Max(q => Math.Abs(top[q].Scores[0] - expected[q].Scores[0]) / Math.Abs(expected[q].Scores[0]));
        found[resident ? "resident" : "streamed"] = new { halfGemm = scan.HalfGemm, topTenShared = $"{shared} of 160", bestScoreRelativeError = worst };
        found["agrees"] = shared >= 144 && worst < 2e-3 && (!found.TryGetValue("agrees", out var before) || (bool)before);
    }
    return found;
});

// 2. Query features and rankings of the shipped model on the device against the CPU's, on a small D-TRAK store.
string smallStore = Path.Combine(work, "dtrak-200");
Step("features-agreement", () =>
{
    if (!File.Exists(Path.Combine(smallStore, "preconditioner.bin")))
    {
        Attributor.BuildStore(new StoreBuildOptions
        {
            Method = "d-trak",
            ModelDirectory = modelDir,
            Data = "embedded",
            Subset = "0:200",
            StoreDirectory = smallStore,
            Settings = new MethodSettings { Timesteps = 10, Dim = 2048 },
        });
    }
    var images = new DatasetLocator().Load("embedded", "200:208", 16).Pixels.ToArray();
    using var onCpu = TrakScorer.Open(smallStore, modelDir, cpu);
    using var onGpu = TrakScorer.Open(smallStore, modelDir, gpu with { Scan = ScanEngine.Onnx });
    var a = onCpu.Features(images, 8);
    var b = onGpu.Features(images, 8);
    double scale = a.Max(MathF.Abs);
    double worst = a.Zip(b).Max(p => Math.Abs(p.First - p.Second)) / scale;
    var ta = onCpu.Attribute(images, 8, 10);
    var tb = onGpu.Attribute(images, 8, 10);
    int shared = Enumerable.Range(0, 8).Sum(q => ta[q].Indices.Intersect(tb[q].Indices).Count());
    int best = Enumerable.Range(0, 8).Count(q => ta[q].Indices[0] == tb[q].Indices[0]);
    return new() { ["featureMaxDifferenceOverMax"] = worst, ["topTenShared"] = $"{shared} of 80", ["bestRowEqual"] = $"{best} of 8", ["agrees"] = worst < 1e-3 && best >= 7 };
});

// 3. Featurization throughput, D-TRAK, 10 timesteps, dense k = 4096, on the device and on this machine's CPU cores.
Step("featurize", () =>
{
    var data = new DatasetLocator().Load("embedded", $"0:{featurizeRows}", 16);
    var schedule = ModelDirectory.Open(modelDir).CreateSchedule();
    var plan = new FeaturizationPlan(FeaturizationPlan.Evenly(schedule.Timesteps, 10), 1, 0, MeasurementKind.Square);
    var found = new Dictionary<string, object>();
    var hostReduced = gpu with { Reduction = GradientReduction.Host };
    foreach (var (label, session) in new[] { ("device", gpu), ("device, summed and projected on the host", hostReduced), ("cpu", cpu) })
    {
        using var trak = new GradientModel(modelDir, plan, new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, 4096, 0), session);
        var features = new float[16 * trak.Extractor.Dim];
        trak.Extractor.Extract(data.Pixels[..(16 * data.ImageLength)], 16, features); // warm-up
        var clock = Stopwatch.StartNew();
        for (int start = 0; start < featurizeRows; start += 16)
        {
            trak.Extractor.Extract(data.Pixels.Slice(start * data.ImageLength, 16 * data.ImageLength), 16, features);
        }
        found[label] = Math.Round(featurizeRows * 10 / clock.Elapsed.TotalSeconds, 1);
    }
    found["unit"] = "example×timesteps/s";
    return found;
});

// 4. One image query end to end on the small store: features, solve, scan (on the device) and top-k.
Step("query-latency", () =>
{
    var image = new DatasetLocator().Load("embedded", "300:301", 16).Pixels.ToArray();
    var found = new Dictionary<string, object>();
    foreach (var (label, session) in new[] { ("device", gpu with { Scan = ScanEngine.Onnx }), ("cpu", cpu) })
    {
        using var attributor = Attributor.Open(modelDir, smallStore, session);
        var times = Repeat(() => attributor.Attribute(image, top: 10), warmUps: 10, runs: 100);
        found[label] = new { p50Ms = P(times, 0.5), p99Ms = P(times, 0.99) };
    }
    return found;
});

// 5. A synthetic bigRows × 4096 float16 store resident on the device: one query, and a batch of 64, against the bytes read.
Step("big-store-scan", () =>
{
    string dir = Path.Combine(work, $"synthetic-{bigRows}x4096");
    var meta = SyntheticStore.Meta(bigRows, 4096, StoreDType.Float16);
    var create = Stopwatch.StartNew();
    SyntheticStore.Create(dir, meta);
    double created = create.Elapsed.TotalSeconds;
    using var store = FeatureStore.Open(dir, meta);
    var open = Stopwatch.StartNew();
    using var scan = OrtStoreScan.Open(store, gpu with { Scan = ScanEngine.Onnx }, resident: device == ExecutionDevice.Cuda ? true : null);
    double opened = open.Elapsed.TotalSeconds;
    double gb = store.Header.DataLength / 1e9;
    var one = Queries(1, 4096, 5);
    var batch = Queries(64, 4096, 6);
    var single = Repeat(() => scan.TopK(one, 1, 10), warmUps: 3, runs: 50);
    var batched = Repeat(() => scan.TopK(batch, 64, 10), warmUps: 2, runs: 10);
    return new()
    {
        ["store"] = $"{bigRows:N0} × 4096 float16, {gb:F2} GB (written in {created:F1} s)",
        ["resident"] = scan.Resident,
        ["openSeconds"] = Math.Round(opened, 2),
        ["oneQuery"] = new { p50Ms = P(single, 0.5), p99Ms = P(single, 0.99), gbPerSecond = Math.Round(gb / (P(single, 0.5) / 1000), 1) },
        ["batch64"] = new { p50Ms = P(batched, 0.5), queriesPerSecond = Math.Round(64 / (P(batched, 0.5) / 1000), 1) },
        ["readBoundGbPerSecond"] = 4300,
    };
});

results["agreed"] = agreed;
File.WriteAllText(jsonPath, JsonSerializer.Serialize(results, indented));
Console.WriteLine($"every check agreed: {(agreed ? "yes" : "no")}; results in {jsonPath}");
return agreed ? 0 : 1;

static float[] Queries(int count, int dim, int seed)
{
    var random = new Random(seed);
    return Enumerable.Range(0, count * dim).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
}

static List<double> Repeat(Action action, int warmUps, int runs)
{
    for (int i = 0; i < warmUps; i++)
    {
        action();
    }
    var times = new List<double>();
    for (int i = 0; i < runs; i++)
    {
        long t0 = Stopwatch.GetTimestamp();
        action();
        times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
    }
    return times;
}

static double P(List<double> values, double p)
{
    var sorted = values.Order().ToList();
    return Math.Round(sorted[Math.Min(sorted.Count - 1, Math.Max(0, (int)Math.Ceiling(p * sorted.Count) - 1))], 2);
}
