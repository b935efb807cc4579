using CommandLine;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Store;

namespace OnnxAttribution.Cli.Verbs;

[Verb("finalize", HelpText = "Accumulate ΦᵀΦ in float64 over a complete store, factorise ΦᵀΦ + λI (Cholesky) and write preconditioner.bin beside it.")]
internal sealed class FinalizeVerb : IVerbOptions
{
    [Option("store", Required = true)]
    public string Store { get; set; } = "";

    [Option("damping", HelpText = "λ relative to the mean diagonal of ΦᵀΦ. Default: the store's method's own, chosen on the LDS validation queries: trak 10, d-trak 1e-1.")]
    public double? Damping { get; set; }

    [Option("kernel", Default = "auto", HelpText = "Which kernel to factor: primal (ΦᵀΦ + λI, k × k), dual (ΦΦᵀ + λI, N × N: the same scores, " +
        "cheaper when the store has fewer rows than k; it reads the features into memory), or auto (dual when k > 8192 and N < k).")]
    public string Kernel { get; set; } = "auto";

    [Option("json")]
    public bool Json { get; set; }

    /// <summary>The form asked for; null for auto.</summary>
    public KernelForm? Form => Kernel switch
    {
        "primal" => KernelForm.Primal,
        "dual" => KernelForm.Dual,
        _ => null,
    };

    /// <inheritdoc/>
    public void Validate()
    {
        OptionChecks.Given(Store, "--store");
        if (Kernel is not ("auto" or "primal" or "dual"))
        {
            throw new UserInputException($"--kernel {Kernel}: expected auto, primal or dual");
        }
        if (Damping is { } damping)
        {
            OptionChecks.NonNegative(damping, "--damping");
        }
    }
}

internal static class FinalizeCommand
{
    /// <summary>The default λ of the store's method (meta.json's 'method'), for a finalize without --damping.</summary>
    private static double DefaultDamping(string store)
    {
        var method = StoreMeta.Load(Path.Combine(store, StoreFiles.Meta)).Method;
        return AttributionMethods.Find(method) is IDampedMethod damped
            ? damped.DefaultDamping
            : throw new UserInputException($"{Path.Combine(store, StoreFiles.Meta)}: method '{method}' has no default damping; give --damping");
    }

    public static int Run(FinalizeVerb o)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var bar = new ConsoleProgress("finalize: ΦᵀΦ");
        double damping = o.Damping ?? DefaultDamping(o.Store);
        var pre = PreconditionerBuilder.Finalize(o.Store, damping, new SyncProgress<(long Done, long Total)>(p => bar.Report(p.Done, p.Total, "rows")), o.Form);
        string kernel = pre.Form == KernelForm.Primal ? "primal" : "dual";
        var result = new { store = o.Store, kernel, order = pre.Order, relativeDamping = pre.RelativeDamping, lambda = pre.Damping, seconds = clock.Elapsed.TotalSeconds };
        if (o.Json)
        {
            Output.WriteJson(result);
        }
        else
        {
            string order = pre.Form == KernelForm.Primal ? $"k × k, k = {pre.Order}" : $"dual, N × N, N = {pre.Order}";
            Console.WriteLine($"finalized {o.Store}: {order}, λ = {pre.Damping:G4} ({pre.RelativeDamping:G3} × mean diagonal of ΦᵀΦ), {result.seconds:F1} s");
        }
        return CliApp.Ok;
    }
}
