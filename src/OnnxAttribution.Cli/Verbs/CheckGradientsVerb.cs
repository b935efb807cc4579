using CommandLine;
using Google.Protobuf;
using OnnxAttribution.Runtime.Gradients;
using OnnxAttribution.Runtime;
using OnnxAttribution.Primitives;
using OnnxAttribution.Training;

namespace OnnxAttribution.Cli.Verbs;

[Verb("check-gradients", HelpText = "Prove the exported graphs: ONNX Runtime's forward output and every layer's per-example gradient from vjp.onnx against " +
    "TorchSharp autograd (one example at a time), for a model folder and for freshly initialised networks. Exit code 3 when a bar is missed.")]
internal sealed class CheckGradientsVerb : IVerbOptions
{
    [Option("model", HelpText = "A model folder (model.json, forward.onnx, vjp.onnx). Without it only fresh networks are checked.")]
    public string? Model { get; set; }

    [Option("reference", HelpText = "A folder of reference gradients from another framework (tools/torch-models/export.py writes PyTorch autograd's "
        + "for the ONNX file it exports): checks the --model folder's forward output (≤ 1e-5 relative) and every parameter tensor's gradient of "
        + "D-TRAK's output (≤ 1e-4 relative) against it, prints the table worst first, and checks nothing else. The model folder may be imported.")]
    public string? Reference { get; set; }

    [Option("fresh", Default = 2, HelpText = "How many freshly initialised networks (of the model's architecture, or the default one) to export, differentiate and check.")]
    public int Fresh { get; set; }

    [Option("batch-sizes", Separator = ',', Default = new[] { 1, 8 })]
    public IEnumerable<int> BatchSizes { get; set; } = [];

    [Option("timesteps", Separator = ',', Default = new long[] { 0, 10, 250, 500, 999 })]
    public IEnumerable<long> Timesteps { get; set; } = [];

    [Option("seed", Default = 0L)]
    public long Seed { get; set; }

    [Option("json", HelpText = "Print the whole report (every layer of every case) as JSON.")]
    public bool Json { get; set; }

    /// <inheritdoc/>
    public void Validate()
    {
        OptionChecks.AtLeast(Fresh, 0, "--fresh");
        if (Reference is not null && Model is null)
        {
            throw new UserInputException("--reference needs --model: the model folder whose gradient graph the reference checks");
        }
        OptionChecks.AllAtLeast(BatchSizes.Select(b => (long)b), 1, "--batch-sizes");
        OptionChecks.AllAtLeast(Timesteps, 0, "--timesteps");
    }
}

internal static class CheckGradientsCommand
{
    public static int Run(CheckGradientsVerb o)
    {
        if (o.Reference is not null)
        {
            return RunReference(o);
        }
        var options = new GradientCheckOptions(o.BatchSizes.ToList(), o.Timesteps.ToList(), o.Seed);
        var cases = new List<GradientCheckCase>();
        UNetConfig config = new();
        if (o.Model is not null)
        {
            var dir = ModelDirectory.Open(o.Model);
            using var net = UNet.FromModelDirectory(dir.Path);
            config = net.Config;
            using var vjp = VjpSession.Open(dir.RequireVjp(), null, dir.Metadata.Condition);
            Output.Note($"checking {dir.VjpPath} against TorchSharp autograd...");
            cases.AddRange(GradientCheck.Run(net, vjp, dir.Path, options));
        }
        for (int i = 0; i < o.Fresh; i++)
        {
            long seed = o.Seed + 1000 + i;
            using var net = new UNet(config, seed);
            // A fresh adapter's B is zero, which would leave its A without gradient on both sides: draw B so the check tests A too.
            net.RandomizeAdapters(seed);
            var forward = OnnxExporter.BuildRunnable(net);
            var graph = ModelExport.BuildVjp(forward, net.ParameterInfos());
            using var vjp = VjpSession.FromBytes(graph.ToByteArray(), $"fresh network (seed {seed})", null, OnnxExporter.ConditionOf(config));
            Output.Note($"checking a freshly initialised network (seed {seed})...");
            cases.AddRange(GradientCheck.Run(net, vjp, $"fresh-seed-{seed}", options));
        }
        var report = new GradientCheckReport(cases, options.ForwardTolerance, options.GradientTolerance);
        if (o.Json)
        {
            Output.WriteJson(new { passed = report.Passed, report.ForwardTolerance, report.GradientTolerance, cases = report.Cases });
        }
        else
        {
            Console.WriteLine($"{"model",-28} {"batch",5} {"timesteps",-22} {"forward max abs",16} {"grad max rel",13}  worst layer");
            foreach (var c in cases)
            {
                string ts = string.Join(",", c.Timesteps.Distinct());
                Console.WriteLine($"{Short(c.Model),-28} {c.BatchSize,5} {Short(ts, 22),-22} {c.ForwardMaxAbsError,16:E2} {c.GradientMaxRelativeError,13:E2}  {c.WorstParameter}");
            }
            Console.WriteLine(report.Passed
                ? $"PASSED: forward ≤ {report.ForwardTolerance:E0} abs, every layer's gradient ≤ {report.GradientTolerance:E0} relative"
                : $"FAILED: a case exceeds forward {report.ForwardTolerance:E0} abs or gradient {report.GradientTolerance:E0} relative");
        }
        return report.Passed ? CliApp.Ok : CliApp.CheckFailed;
    }

    private static int RunReference(CheckGradientsVerb o)
    {
        var dir = ModelDirectory.Open(o.Model!);
        Output.Note($"checking {dir.VjpPath} against the reference in {o.Reference}...");
        var report = ReferenceGradientCheck.Run(dir, o.Reference!);
        if (o.Json)
        {
            Output.WriteJson(new { passed = report.Passed, forward_bar = ReferenceGradientReport.ForwardBar, gradient_bar = ReferenceGradientReport.GradientBar, report });
            return report.Passed ? CliApp.Ok : CliApp.CheckFailed;
        }
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"t = {report.Timestep}: forward ε̂ max relative error {report.ForwardMaxRelativeError:E2} (bar {ReferenceGradientReport.ForwardBar:E0})"));
        Console.WriteLine($"{"parameter",-48} {"elements",10} {"max rel",10} {"max abs",10}");
        foreach (var t in report.Tensors.Take(10))
        {
            Console.WriteLine(string.Create(inv, $"{Short(t.Parameter, 48),-48} {t.Elements,10} {t.MaxRelativeError,10:E2} {t.MaxAbsoluteError,10:E2}{(t.Vanishing ? "  (vanishing)" : "")}"));
        }
        if (report.Tensors.Count(t => t.Vanishing) is > 0 and var vanishing)
        {
            Console.WriteLine($"{vanishing} tensors have a vanishing reference gradient (below {ReferenceGradientReport.VanishingFraction:E0} of the largest: a bias that a "
                + "normalisation or softmax removes); their error is measured against that floor");
        }
        if (report.Tensors.Count > 10)
        {
            Console.WriteLine($"… {report.Tensors.Count - 10} more tensors, each within the worst above");
        }
        var lists = new[]
        {
            ("no gradient in the graph for", report.MissingGradients),
            ("gradients with no reference (frozen there, or folded)", report.UnmatchedGradients),
            ("reference parameters no initializer holds", report.ReferenceWithoutInitializer),
        };
        foreach (var (what, list) in lists)
        {
            if (list.Count > 0)
            {
                Console.WriteLine($"{what}: {string.Join(", ", list.Take(8))}{(list.Count > 8 ? $", … ({list.Count})" : "")}");
            }
        }
        var worst = report.Worst;
        string bars = string.Create(inv, $"forward {ReferenceGradientReport.ForwardBar:E0}, gradient {ReferenceGradientReport.GradientBar:E0} relative");
        Console.WriteLine(report.Passed
            ? string.Create(inv, $"PASSED: {report.Tensors.Count} tensors, worst {worst!.Parameter} at {worst.MaxRelativeError:E2} relative ({bars})")
            : $"FAILED: {(report.MissingGradients.Count > 0 ? "parameters without a gradient; " : "")}a bar is missed ({bars})");
        return report.Passed ? CliApp.Ok : CliApp.CheckFailed;
    }

    private static string Short(string s, int n = 28) => s.Length <= n ? s : "…" + s[^(n - 1)..];
}
