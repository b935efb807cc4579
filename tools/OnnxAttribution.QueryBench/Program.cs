using System.Diagnostics;
using System.Globalization;
using OnnxAttribution;
using OnnxAttribution.Imaging;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;
using OnnxAttribution.Tools;

// Usage: OnnxAttribution.QueryBench <store> <model> <png> [queries] [--query-timesteps Q] [--threads N]
// Opens the store through the library (as the server does), answers 10 warm-up queries, then <queries> (default 200) of
// the same PNG one after another, and prints the p50 and p99 of each stage (decode, features, solve, scan with top-k) and
// of the whole query, next to a plain parallel read of the store's feature bytes in the same run (the scan's bound).
if (args.Length < 3)
{
    Console.Error.WriteLine("usage: OnnxAttribution.QueryBench <store> <model> <png> [queries] [--query-timesteps Q] [--threads N]");
    return 2;
}
string storeDir = args[0], model = args[1], png = args[2];
int n = args.Length > 3 && !args[3].StartsWith("--", StringComparison.Ordinal) ? int.Parse(args[3], CultureInfo.InvariantCulture) : 200;
int at = Array.IndexOf(args, "--query-timesteps");
int queryTimesteps = at >= 0 ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : 0;
int threadsAt = Array.IndexOf(args, "--threads");
int threads = threadsAt >= 0 ? int.Parse(args[threadsAt + 1], CultureInfo.InvariantCulture) : 0;

var stages = new Dictionary<string, List<double>>(StringComparer.Ordinal);
Dictionary<string, double>? current = null;
using var listener = new ActivityListener
{
    ShouldListenTo = source => source.Name == QueryTrace.SourceName,
    Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
    ActivityStopped = span =>
    {
        if (current is not null)
        {
            current[span.OperationName] = current.GetValueOrDefault(span.OperationName) + span.Duration.TotalMilliseconds;
        }
    },
};
ActivitySource.AddActivityListener(listener);

var open = Stopwatch.StartNew();
using var attributor = Attributor.Open(model, storeDir, SessionSettings.Default with { QueryTimesteps = queryTimesteps, IntraOpThreads = threads });
Console.Error.WriteLine($"opened in {open.Elapsed.TotalMilliseconds:F0} ms: {attributor.Method}, {attributor.Rows} rows");
var totals = new List<double>();
for (int i = -10; i < n; i++)
{
    current = new Dictionary<string, double>(StringComparer.Ordinal);
    long t0 = Stopwatch.GetTimestamp();
    var image = PngImage.Read(png, attributor.Channels, attributor.ImageSize).Pixels;
    current["decode"] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
    attributor.Attribute(image, top: 10);
    double total = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
    if (i >= 0)
    {
        totals.Add(total);
        foreach (var (stage, ms) in current)
        {
            (stages.TryGetValue(stage, out var list) ? list : stages[stage] = []).Add(ms);
        }
    }
}
current = null;

using var store = FeatureStore.Open(storeDir);
var reads = new List<double>();
for (int i = 0; i < 21; i++)
{
    long t0 = Stopwatch.GetTimestamp();
    ReadBound.SequentialRead(store);
    reads.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
}
double read = P(reads.Skip(1).ToList(), 0.5);

string F(double ms) => ms.ToString("F2", CultureInfo.InvariantCulture);
Console.WriteLine($"{n} queries of {png} against {storeDir} ({store.Rows:N0} × {store.Dim} {store.DType.ToString().ToLowerInvariant()}, " +
    $"{store.Meta.Timesteps.Count} timesteps{(queryTimesteps == 0 ? "" : $", queries at {queryTimesteps}")}):");
foreach (var stage in new[] { "decode", QueryTrace.Features, QueryTrace.Solve, QueryTrace.Scan, QueryTrace.Dual, QueryTrace.TopK }.Where(stages.ContainsKey))
{
    Console.WriteLine($"  {stage,-9} p50 {F(P(stages[stage], 0.5)),8} ms   p99 {F(P(stages[stage], 0.99)),8} ms");
}
Console.WriteLine($"  {"query",-9} p50 {F(P(totals, 0.5)),8} ms   p99 {F(P(totals, 0.99)),8} ms");
if (stages.TryGetValue(QueryTrace.Scan, out var scans))
{
    Console.WriteLine($"  read of the same {store.Header.DataLength / 1e6:F0} MB: {F(read)} ms ({store.Header.DataLength / 1e6 / read:F1} GB/s); " +
        $"scan / read {P(scans, 0.5) / read:F2}");
}
return 0;

static double P(List<double> values, double p)
{
    var sorted = values.Order().ToList();
    return sorted[Math.Min(sorted.Count - 1, Math.Max(0, (int)Math.Ceiling(p * sorted.Count) - 1))];
}
