using System.Diagnostics;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Gradients;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Training;
using static TorchSharp.torch;

// Usage: PipelineBench <model dir> [examples=64] [timesteps=10] [dim=4096] [batch=16] [paths=ort,torch] [rounds=3]
// Prints a markdown table. Every featurize path uses the loss measurement, the same timesteps and noise and Rademacher
// projections; the ORT and TorchSharp paths of one projector (dense, or factored) compute the same features. Every path runs once to warm up (tiered JIT, ORT arenas),
// then all paths take turns for the given rounds and each reports its median: a busy spell on this shared machine then
// slows one round of every path rather than all of one path.
string modelDir = args.Length > 0 ? args[0] : "models/fm16";
int examples = args.Length > 1 ? int.Parse(args[1]) : 64;
int timesteps = args.Length > 2 ? int.Parse(args[2]) : 10;
int dim = args.Length > 3 ? int.Parse(args[3]) : 4096;
int batch = args.Length > 4 ? int.Parse(args[4]) : 16;
var paths = (args.Length > 5 ? args[5] : "ort,torch").Split(',');
int rounds = args.Length > 6 ? int.Parse(args[6]) : 3;
if (rounds < 1 || examples < 1 || batch < 1)
{
    Console.Error.WriteLine("examples, batch and rounds must be at least 1");
    return 2;
}

var model = ModelDirectory.Open(modelDir);
var schedule = model.CreateSchedule();
var data = SubsetSpec.Parse($"0:{examples}").Apply(new DatasetLocator().Load("embedded"));
int d = data.ImageLength;
var plan = new FeaturizationPlan(FeaturizationPlan.Evenly(schedule.Timesteps, timesteps), 1, 0, MeasurementKind.Loss);
Console.Error.WriteLine($"model {modelDir}, {examples} examples × {timesteps} timesteps, k = {dim}, batch {batch}, {Environment.ProcessorCount} cores");

var measures = new List<(string What, Action Run, string Note, List<double> Seconds)>();
var owned = new List<IDisposable>(); // open until every round is done (disposing also writes ORT's profile, when asked for)
void Time(string what, Action run, string note = "") => measures.Add((what, run, note, []));

// 1. ORT forward vs forward + VJP, per example.
if (paths.Contains("ort"))
{
    var denoiser = model.OpenDenoiser();
    var vjp = VjpSession.Open(model.RequireVjp());
    owned.AddRange([denoiser, vjp]);
    var xt = TestNormal(batch * d, 1);
    var cot = TestNormal(batch * d, 2);
    var ts = Enumerable.Repeat(500L, batch).ToArray();
    var eps = new float[batch * d];
    int reps = Math.Max(1, examples / batch);
    Time($"ORT forward, batch {batch}", () => { for (int r = 0; r < reps; r++) denoiser.Predict(xt, ts, batch, eps); }, $"{reps * batch} examples");
    Time($"ORT forward+VJP (per-example grads), batch {batch}", () => { for (int r = 0; r < reps; r++) vjp.Run(xt, ts, cot, batch, vjp.GradientOutputs); }, $"{reps * batch} examples");
    Time($"ORT forward+VJP (Kronecker factors), batch {batch}", () => { for (int r = 0; r < reps; r++) vjp.Run(xt, ts, cot, batch, vjp.FactorOutputs); }, $"{reps * batch} examples");
}

// 2. Featurization through ONNX Runtime, dense and factored.
foreach (var kind in paths.Contains("ort") ? new[] { ProjectorKind.Dense, ProjectorKind.Factored } : [])
{
    var trak = new GradientModel(modelDir, plan, new ProjectionSettings(kind, ProjectionKind.Rademacher, dim, 0));
    owned.Add(trak);
    var features = new float[batch * trak.Extractor.Dim];
    Time($"featurize, ORT + {kind.ToString().ToLowerInvariant()} projection (k = {trak.Extractor.Dim})", () =>
    {
        for (int start = 0; start < examples; start += batch)
        {
            trak.Extractor.Extract(data.Pixels.Slice(start * d, batch * d), batch, features);
        }
    }, $"{examples * timesteps} example×timesteps");
}

// 2b. The same as featurize runs it (TrakEngine): one example per core at once, each on one ONNX Runtime thread.
int streams = Environment.ProcessorCount;
foreach (var kind in paths.Contains("ort") && streams > 1 ? new[] { ProjectorKind.Dense, ProjectorKind.Factored } : [])
{
    var trak = new GradientModel(modelDir, plan, new ProjectionSettings(kind, ProjectionKind.Rademacher, dim, 0), FeaturizeOptions.StreamSessionOf(SessionSettings.Default, 0));
    owned.Add(trak);
    int kdim = trak.Extractor.Dim;
    var pixels = data.Pixels.ToArray();
    Time($"featurize, {streams} streams × 1 thread, ORT + {kind.ToString().ToLowerInvariant()} projection (k = {kdim})", () =>
    {
        Parallel.For(0, streams, w =>
        {
            var features = new float[batch * kdim];
            for (int start = w * batch; start < examples; start += streams * batch)
            {
                trak.Extractor.Extract(pixels.AsSpan(start * d, batch * d), batch, features);
            }
        });
    }, $"{examples * timesteps} example×timesteps");
}

// 3. The straightforward way: TorchSharp autograd one example at a time, gradients averaged over the timesteps, then the
// same projection as the ORT row (dense of every parameter; factored of the Conv/Gemm weights, P_outᵀ G P_in per layer).
if (paths.Contains("torch"))
{
    var net = UNet.FromModelDirectory(model.Path);
    owned.Add(net);
    var parameters = net.parameters().ToArray();
    long p = parameters.Sum(x => x.numel());
    var dense = new DenseProjector(p, dim, ProjectionKind.Rademacher, 0);
    FactoredProjector factored;
    using (var trak = new GradientModel(modelDir, plan, new ProjectionSettings(ProjectorKind.Factored, ProjectionKind.Rademacher, dim, 0)))
    {
        factored = trak.Extractor.Factored!;
    }
    var named = net.named_parameters().ToDictionary(x => x.name, x => x.parameter);
    var weights = factored.Layers.Select(l =>
    {
        var w = named.GetValueOrDefault(l.Layer + ".weight") ?? throw new InvalidOperationException($"no TorchSharp parameter {l.Layer}.weight");
        return w.shape[0] == l.OutDim && w.numel() == (long)l.OutDim * l.InDim ? w : throw new InvalidOperationException($"{l.Layer}.weight is not {l.OutDim}×{l.InDim}");
    }).ToArray();
    var noise = new float[d];
    var grad = new float[p];
    var y = new float[dim];
    var yFactored = new float[factored.OutputDim];
    Straightforward($"featurize, TorchSharp autograd per example + dense projection (k = {dim})", parameters, host =>
    {
        long offset = 0;
        foreach (var h in host)
        {
            h.CopyTo(grad, offset);
            offset += h.Length;
        }
        dense.Project(grad, y);
    });
    Straightforward($"featurize, TorchSharp autograd per example + factored projection (k = {factored.OutputDim})", weights,
        host => factored.ProjectDense(host.Select(h => (ReadOnlyMemory<float>)h).ToList(), yFactored));

    // Gradients are summed in torch tensors and copied out once per example (per-parameter managed copies each step would
    // allocate ~1 MB), and every Scalar is explicit and alive for its call: .NET may finalize an implicit one (the alpha of
    // a + b) while libtorch still reads it, a crash in add seen here with TorchSharp 0.107 (see KeptScalars).
    void Straightforward(string what, Tensor[] wrt, Action<float[][]> project)
    {
        var sums = wrt.Select(q => zeros(q.numel())).ToArray();
        var host = wrt.Select(q => new float[q.numel()]).ToArray();
        var inverseSteps = (TorchSharp.Scalar)(1.0 / timesteps);
        var one = (TorchSharp.Scalar)1;
        var minusOne = (TorchSharp.Scalar)(-1);
        Time(what, () =>
        {
            for (int i = 0; i < examples; i++)
            {
                foreach (var sum in sums)
                {
                    sum.zero_();
                }
                for (int j = 0; j < timesteps; j++)
                {
                    using var scope = NewDisposeScope();
                    long t = plan.Timesteps[j];
                    plan.Noise(j, 0, noise);
                    var x0 = tensor(data.Image(i).ToArray(), [1, data.Channels, data.Height, data.Width]);
                    var e = tensor(noise, [1, data.Channels, data.Height, data.Width]);
                    using TorchSharp.Scalar a = (float)Math.Sqrt(schedule.AlphaBars[t]), b = (float)Math.Sqrt(1 - schedule.AlphaBars[t]);
                    var xt = x0.mul(a).add(e.mul(b), one);
                    net.zero_grad();
                    var diff = net.forward(xt, tensor(new[] { t }, [1])).add(e, minusOne);
                    var loss = (diff * diff).mean();
                    loss.backward();
                    for (int l = 0; l < wrt.Length; l++)
                    {
                        sums[l].add_(wrt[l].grad!.flatten(), inverseSteps);
                    }
                }
                for (int l = 0; l < wrt.Length; l++)
                {
                    sums[l].data<float>().CopyTo(host[l]);
                }
                project(host);
            }
        }, $"{examples * timesteps} example×timesteps");
    }
}

// Sessions and models stay open until every path has run in every round.
foreach (var m in measures)
{
    m.Run();
}
for (int round = 0; round < rounds; round++)
{
    foreach (var m in measures)
    {
        var clock = Stopwatch.StartNew();
        m.Run();
        m.Seconds.Add(clock.Elapsed.TotalSeconds);
        Console.Error.WriteLine($"round {round + 1}/{rounds}, {m.What}: {clock.Elapsed.TotalSeconds:F2} s");
    }
}

Console.WriteLine($"| step | seconds (median of {rounds}) | per example×timestep (ms) | example×timesteps/s | notes |");
Console.WriteLine("| --- | ---: | ---: | ---: | --- |");
foreach (var (what, _, note, seconds) in measures)
{
    double s = seconds.Order().ElementAt(seconds.Count / 2);
    int n = what.StartsWith("ORT forward", StringComparison.Ordinal) ? Math.Max(1, examples / batch) * batch : examples * timesteps;
    Console.WriteLine($"| {what} | {s:F2} | {s * 1000 / n:F2} | {n / s:F0} | {note} |");
}

owned.ForEach(o => o.Dispose());
return 0;

static float[] TestNormal(int n, int seed)
{
    var rng = new Random(seed);
    return Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
}
