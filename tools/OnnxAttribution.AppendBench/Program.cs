using System.Diagnostics;
using System.Globalization;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;
using OnnxAttribution.Tools;

// Usage: OnnxAttribution.AppendBench <dir> <model> [rows] [added] [k] [timesteps]
// The cost of the living-store verbs at the store setting featurize uses by default (d-trak, dense k = 4096, 10 timesteps) on the
// full Fashion-MNIST training set resized to the model's size. The base store holds rows 0 … rows−added−1 with the meta featurize
// writes for them and synthetic feature values (featurizing 59,400 real rows takes about half an hour here; the cost of appending
// does not depend on the values), finalized. Then, each timed as a whole: featurize of the `added` new rows alone (the per-row
// cost of a rebuild), append of the same rows (featurize + copy + ΦᵀΦ update + Cholesky + commit), remove of 10 rows, and
// finalize of all rows (the kernel part of a rebuild). A rebuild is estimated as rows/added × featurize(added) + finalize(rows).
// Prints a markdown table.
if (args.Length < 2)
{
    Console.Error.WriteLine("usage: OnnxAttribution.AppendBench <dir> <model> [rows=60000] [added=600] [k=4096] [timesteps=10]");
    return 2;
}
string dir = args[0], model = args[1];
int Arg(int i, int fallback) => args.Length > i ? int.Parse(args[i], CultureInfo.InvariantCulture) : fallback;
int rows = Arg(2, 60000), added = Arg(3, 600), k = Arg(4, 4096), timesteps = Arg(5, 10);
int baseRows = rows - added;
var directory = ModelDirectory.Open(model);
int size = directory.Metadata.ImageSize;
var locator = new DatasetLocator();
string baseSubset = $"0:{baseRows}", newSubset = $"{baseRows}:{rows}";
var baseData = locator.Load("fashion-mnist", baseSubset, size);
var newData = locator.Load("fashion-mnist", newSubset, size);
if (Directory.Exists(dir))
{
    Directory.Delete(dir, recursive: true);
}
FeaturizeOptions Options(ImageDataset data, string subset, string outDir) => new()
{
    ModelDirectory = model,
    Data = data,
    Subset = subset,
    Plan = new FeaturizationPlan(FeaturizationPlan.Evenly(directory.CreateSchedule().Timesteps, timesteps), 1, 0, MeasurementKind.Square),
    Projection = new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, k, 0),
    Method = "d-trak",
    OutDirectory = outDir,
};
double Time(Action action)
{
    var clock = Stopwatch.StartNew();
    action();
    return clock.Elapsed.TotalSeconds;
}

// The base store: featurize's meta for the base rows, synthetic values (deterministic per row block).
string store = Path.Combine(dir, "store");
var meta = TrakEngine.Meta(Options(baseData, baseSubset, store), StoreMeta.FingerprintFile(directory.VjpPath), k) with
{
    ModelFiles = GradientModel.ModelFilesOf(directory),
};
double synthetic = Time(() =>
{
    SyntheticStore.Create(store, meta);
    new StoreSource(model, "fashion-mnist", baseSubset, size).Save(store);
});
double finalizeBase = Time(() => PreconditionerBuilder.Finalize(store, 0.1));
double featurizeNew = Time(() => TrakEngine.Featurize(Options(newData, newSubset, Path.Combine(dir, "new-rows-alone"))).Dispose());
double append = Time(() => StoreUpdate.Append(new AppendRequest { StoreDirectory = store, Data = newData, DataName = "fashion-mnist", Subset = newSubset }));
double remove = Time(() => StoreUpdate.Remove(new RemoveRequest { StoreDirectory = store, Rows = [.. Enumerable.Range(0, 10).Select(i => (long)i * (rows / 10))], Reason = "bench" }));
double finalizeAll = Time(() => PreconditionerBuilder.Finalize(store, 0.1));
double rebuild = (double)rows / added * featurizeNew + finalizeAll;

string F(double s) => s.ToString("F1", CultureInfo.InvariantCulture);
string P(double s) => (100 * s / rebuild).ToString("F2", CultureInfo.InvariantCulture);
Console.WriteLine($"machine: {Environment.ProcessorCount} cores; store: {rows:N0} rows of Fashion-MNIST at {size}×{size}, d-trak, dense k = {k}, {timesteps} timesteps, " +
    $"features {new FileInfo(Path.Combine(store, StoreFiles.Features)).Length / 1e9:F2} GB; base store written in {F(synthetic)} s, finalized in {F(finalizeBase)} s");
Console.WriteLine();
Console.WriteLine("| step | seconds | share of a rebuild |");
Console.WriteLine("| --- | --- | --- |");
Console.WriteLine($"| featurize the {added:N0} new rows alone ({100.0 * added / rows:F1}% of the rows) | {F(featurizeNew)} | {P(featurizeNew)}% |");
Console.WriteLine($"| **append** the {added:N0} rows (featurize them, copy the store, add them to ΦᵀΦ, Cholesky, commit) | {F(append)} | {P(append)}% |");
Console.WriteLine($"| **remove** 10 rows (copy with zeros, ΦᵀΦ over all rows again, Cholesky, commit) | {F(remove)} | {P(remove)}% |");
Console.WriteLine($"| finalize over all {rows:N0} rows (the kernel part of a rebuild) | {F(finalizeAll)} | {P(finalizeAll)}% |");
Console.WriteLine($"| rebuild, estimated: {rows / added} × the featurize above + the finalize | {F(rebuild)} | 100% |");
Directory.Delete(dir, recursive: true);
return 0;
