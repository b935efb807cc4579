using System.Diagnostics;
using System.Globalization;
using OnnxAttribution.Store;
using OnnxAttribution.Tools;

using OnnxAttribution.Runtime;

// Usage: OnnxAttribution.StoreBench <dir> <rows> <dim> <float32|float16> [--keep] [--int8] [--engine simd|onnx] [--device cpu|cuda]
// Creates a synthetic store in <dir> (unless one with the same settings is complete there), then times, on a warm page cache:
// a plain SIMD sequential read of the same bytes (the bandwidth bound), TopK(k=10) for one query, and for a batch of 64.
// --int8 also writes the store's 8-bit copy (StoreQuantizer, timed) and times the same over it: the read of the int8 bytes,
// and TopK through the copy with its exact re-rank (checked to give the exact scan's answer); the exact rows are timed first
// with the copy turned off. Ends with the process's peak and current resident memory from /proc/self/status.
// --engine onnx scores with OrtStoreScan (Gemm + TopK run by ONNX Runtime on --device; on cuda the rows are copied to GPU
// memory once, and that copy is timed apart). Prints markdown table rows. Deletes the store afterwards unless --keep.
if (args.Length < 4)
{
    Console.Error.WriteLine("usage: OnnxAttribution.StoreBench <dir> <rows> <dim> <float32|float16> [--keep] [--int8] [--engine simd|onnx] [--device cpu|cuda]");
    return 2;
}
string Option(string name, string fallback) => Array.IndexOf(args, name) is int at and >= 0 && at + 1 < args.Length ? args[at + 1] : fallback;
bool onnx = Option("--engine", "simd") == "onnx";
var device = Option("--device", "cpu") == "cuda" ? ExecutionDevice.Cuda : ExecutionDevice.Cpu;
string dir = args[0];
long rows = long.Parse(args[1], CultureInfo.InvariantCulture);
int dim = int.Parse(args[2], CultureInfo.InvariantCulture);
var dtype = args[3] == "float16" ? StoreDType.Float16 : StoreDType.Float32;
bool keep = args.Contains("--keep");
bool int8 = args.Contains("--int8");

var meta = SyntheticStore.Meta(rows, dim, dtype);
var create = Stopwatch.StartNew();
SyntheticStore.Create(dir, meta);
Console.Error.WriteLine($"store ready in {create.Elapsed.TotalSeconds:F1} s");

if (int8 && !File.Exists(Path.Combine(dir, StoreFiles.QuantizedFeatures)))
{
    var quantizing = Stopwatch.StartNew();
    StoreQuantizer.Quantize(dir);
    Console.Error.WriteLine($"8-bit copy written in {quantizing.Elapsed.TotalSeconds:F1} s");
}
using var store = FeatureStore.Open(dir, meta);
store.UseQuantizedRows = false;
double gb = store.Header.DataLength / 1e9;

// The bandwidth bound: a plain parallel SIMD sum over the same bytes.
double seq = Median(Repeat(() => ReadBound.SequentialRead(store), minSeconds: 1.5, minRuns: 3, maxRuns: 50).Skip(1).ToList());

var random = new Random(1);
float[] queries = Enumerable.Range(0, 64 * dim).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
float[] one = queries[..dim];
var opening = Stopwatch.StartNew();
var scan = onnx ? OrtStoreScan.Open(store, new SessionSettings(device)) : null;
if (scan is not null)
{
    Console.Error.WriteLine($"onnx scan on {device}: {scan.Chunks} chunks, resident {scan.Resident}, float16 Gemm {scan.HalfGemm}; " +
        $"opened in {opening.Elapsed.TotalSeconds:F2} s");
}
Func<float[], int, TopKResult[]> topK = scan is null ? (q, n) => store.TopK(q, n, 10) : (q, n) => scan.TopK(q, n, 10);
var single = Repeat(() => topK(one, 1), minSeconds: 1.5, minRuns: 5, maxRuns: 100000); // warm-up (tiered JIT)
single = Repeat(() => topK(one, 1), minSeconds: 5, minRuns: 30, maxRuns: 1000);
var batch = Repeat(() => topK(queries, 64), minSeconds: 1.5, minRuns: 2, maxRuns: 1000); // warm-up
batch = Repeat(() => topK(queries, 64), minSeconds: 10, minRuns: 8, maxRuns: 1000);
single.Sort();
batch.Sort();

string F(double ms) => ms.ToString("F1", CultureInfo.InvariantCulture);
string G(double ms) => (gb / (ms / 1000)).ToString("F1", CultureInfo.InvariantCulture);
Console.WriteLine(
    $"| {rows:N0} × {dim} | {(dtype == StoreDType.Float16 ? "float16" : "float32")}{(onnx ? $", onnx on {device.ToString().ToLowerInvariant()}" : "")} | {gb:F2} | {F(seq)} ({G(seq)} GB/s) | " +
    $"{F(P(single, 0.5))} / {F(P(single, 0.99))} ({G(P(single, 0.5))} GB/s) | {single.Count} | " +
    $"{F(P(batch, 0.5))} / {F(P(batch, 0.99))} ({F(P(batch, 0.5) / 64)} per query) | {batch.Count} |");

if (int8)
{
    Int8Section.Run(store, dir, one, queries, Repeat, P, Median, seq, P(single, 0.5));
}
Console.WriteLine($"  (memory: {Int8Section.Memory()})");

scan?.Dispose();
store.Dispose();
if (!keep)
{
    Directory.Delete(dir, recursive: true);
}
return 0;

static double P(List<double> sorted, double p) => sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];

static double Median(List<double> xs)
{
    xs.Sort();
    return xs[xs.Count / 2];
}

static List<double> Repeat(Action action, double minSeconds, int minRuns, int maxRuns)
{
    var times = new List<double>();
    var total = Stopwatch.StartNew();
    while (times.Count < maxRuns && (times.Count < minRuns || total.Elapsed.TotalSeconds < minSeconds))
    {
        long t0 = Stopwatch.GetTimestamp();
        action();
        times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
    }
    return times;
}
