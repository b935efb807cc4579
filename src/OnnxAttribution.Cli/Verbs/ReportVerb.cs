using CommandLine;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Reporting;
using OnnxAttribution.Runtime.Sampling;
using OnnxAttribution.Store;

namespace OnnxAttribution.Cli.Verbs;

[Verb("report", HelpText = "An audit report of one query (--seed or --image) against a method store: one self-contained HTML file with the query, " +
    "its top training images with scores, labels and how far each stands out from all rows (z-score, percentile), and the provenance " +
    "(model hash, store settings and version, the command that reproduces it). --json prints the same content without images.")]
internal sealed class ReportVerb : SessionVerbOptions, IVerbOptions
{
    [Option("store", Required = true, HelpText = "A method store folder, as for 'attribute'.")]
    public string Store { get; set; } = "";

    [Option("model", HelpText = "Model folder (default: the one the store was featurized with, from source.json).")]
    public string? Model { get; set; }

    [Option("seed", HelpText = "Generate the query from this seed (with --steps, --sampler), as 'attribute --seed' does.")]
    public long? Seed { get; set; }

    [Option("image", HelpText = "A PNG to report on instead (resized to the model's size, converted to its channels).")]
    public string? Image { get; set; }

    [Option("label", HelpText = "For a class-conditional model: the query's class label (generated with it, or a given image attributed under it).")]
    public long? Label { get; set; }

    [Option("prompt", HelpText = "For a text-conditioned model: the query's prompt, e.g. \"a dark sneaker\" (generated with it, or a given image attributed under it).")]
    public string? Prompt { get; set; }

    [Option("steps", Default = 50)]
    public int Steps { get; set; }

    [Option("sampler", Default = SamplerKind.Ddim)]
    public SamplerKind Sampler { get; set; }

    [Option("top", Default = 10, HelpText = "How many training images to list (at most the store's rows).")]
    public int Top { get; set; }

    [Option("out", Default = "report.html", HelpText = "The HTML file written.")]
    public string Out { get; set; } = "report.html";

    [Option("compare", Separator = ',', HelpText = "Other method stores (comma-separated folders, e.g. a DAS and a K-FAC store of the same model) " +
        "that answer the same query: the report shows their top rows and how many they share with this store's (agreement between methods).")]
    public IEnumerable<string> Compare { get; set; } = [];

    [Option("pdf", HelpText = "Also print the report to this PDF file, through a headless Chromium (Debian's /usr/bin/chromium, or ONNX_ATTRIBUTION_CHROMIUM).")]
    public string? Pdf { get; set; }

    [Option("json", HelpText = "Also print the report as JSON (no images) on stdout.")]
    public bool Json { get; set; }

    /// <inheritdoc/>
    public void Validate()
    {
        OptionChecks.Given(Store, "--store");
        OptionChecks.AtLeast(Steps, 1, "--steps");
        OptionChecks.InRange(Top, 1, 1000, "--top");
        ValidateSession();
        OptionChecks.OutputFile(Out, "--out");
        if (Pdf is not null)
        {
            OptionChecks.OutputFile(Pdf, "--pdf");
        }
        if ((Seed is null) == (Image is null))
        {
            throw new UserInputException("give exactly one query: --seed N (generate it) or --image file.png");
        }
    }
}

internal static class ReportCommand
{
    public static int Run(ReportVerb o, CancellationToken cancel)
    {
        if (!Directory.Exists(o.Store))
        {
            throw new UserInputException($"--store {o.Store}: folder not found");
        }
        if (o.Image is not null && !File.Exists(o.Image))
        {
            throw new UserInputException($"--image {o.Image}: file not found");
        }
        var source = StoreSource.TryLoad(o.Store);
        var modelDir = o.Model ?? source?.ModelDirectory
            ?? throw new UserInputException($"--store {o.Store}: the folder has no {StoreFiles.Source}: pass --model");
        // The attribute verb's path: the method's scorer, the query made as 'attribute' makes it.
        using var attributor = Attributor.Open(modelDir, o.Store, o.Session);
        AttributionQuery query;
        QueryOrigin origin;
        if (o.Seed is long seed)
        {
            query = attributor.GenerateQueries([seed], o.Sampler, o.Steps, null, cancel,
                Runtime.Models.ConditionSpec.Query(attributor.Condition, o.Label, o.Prompt, "--label", "--prompt") is long label ? new QueryCondition([label]) : null)[0];
            origin = QueryOrigin.FromSeed(seed, o.Sampler, o.Steps);
        }
        else
        {
            query = attributor.ReadPng(o.Image!) with { Condition = Runtime.Models.ConditionSpec.Query(attributor.Condition, o.Label, o.Prompt, "--label", "--prompt") };
            origin = QueryOrigin.FromFile(o.Image!);
        }
        var provenance = ReportProvenance.Read(o.Store, attributor.Method, Reproduce(o));
        var report = AuditReport.Score(attributor.Scorer, Path.GetFileName(Path.TrimEndingDirectorySeparator(o.Store)), query, origin, o.Top,
            source is null ? null : attributor.TrainingData, provenance, attributor.ImageSize, cancel);
        report = report with
        {
            Agreement = [.. o.Compare.Select(other => Agree(other, o, query, report, cancel))],
            Prompt = attributor.Condition?.PromptOf(query.Condition),
        };
        byte[] html = System.Text.Encoding.UTF8.GetBytes(AuditReportHtml.Render(report));
        AtomicFile.Write(o.Out, stream => stream.Write(html), html.Length);
        if (o.Pdf is not null)
        {
            PdfPrinter.Print(o.Out, o.Pdf);
        }
        if (o.Json)
        {
            Output.WriteJson(report);
        }
        else
        {
            var best = report.Top[0];
            Console.WriteLine($"wrote {o.Out}: {report.Query}, top {report.Top.Count} of {report.Summary.Rows} rows with {report.Provenance.Method}; " +
                $"best #{best.Index} ({best.Score:G3}, z = {best.ZScore:F2})");
        }
        return CliApp.Ok;
    }

    /// <summary>The answer of the store in <paramref name="other"/> (with its own model, from its source.json) to the same query.</summary>
    private static MethodAgreement Agree(string other, ReportVerb o, AttributionQuery query, AuditReport report, CancellationToken cancel)
    {
        if (!Directory.Exists(other))
        {
            throw new UserInputException($"--compare {other}: folder not found");
        }
        string model = StoreSource.TryLoad(other)?.ModelDirectory ?? o.Model
            ?? throw new UserInputException($"--compare {other}: the folder has no {StoreFiles.Source}: pass --model");
        using var attributor = Attributor.Open(model, other, o.Session);
        var ranking = attributor.Attribute([query], report.Top.Count, null, cancel)[0];
        return MethodAgreement.Of(Path.GetFileName(Path.TrimEndingDirectorySeparator(other)), attributor.Method, ranking, report.Top);
    }

    /// <summary>The command that makes the same report: every setting that changes it written out, defaults included.</summary>
    private static string Reproduce(ReportVerb o)
    {
        var args = new List<string> { "report", "--store", o.Store };
        if (o.Model is not null)
        {
            args.AddRange(["--model", o.Model]);
        }
        args.AddRange(o.Seed is long seed
            ? ["--seed", seed.ToString(System.Globalization.CultureInfo.InvariantCulture), "--sampler", o.Sampler.ToString().ToLowerInvariant(),
                "--steps", o.Steps.ToString(System.Globalization.CultureInfo.InvariantCulture)]
            : ["--image", o.Image!]);
        args.AddRange(["--top", o.Top.ToString(System.Globalization.CultureInfo.InvariantCulture), "--out", o.Out]);
        if (o.Compare.Any())
        {
            args.AddRange(["--compare", string.Join(",", o.Compare)]);
        }
        return CliApp.CommandLineOf([.. args]);
    }
}
