using CommandLine;
using OnnxAttribution.Store;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime;
using OnnxAttribution.Runtime.Sampling;

namespace OnnxAttribution.Cli.Verbs;

[Verb("influential", HelpText = "Count the 'generally influential' training images of method stores (Xie et al. 2024): " +
    "those in the top-k of more than a fraction of generated queries. Compares e.g. tracin with retrac; writes JSON.")]
internal sealed class InfluentialVerb : SessionVerbOptions, IVerbOptions
{
    [Option("stores", Required = true, Separator = ',', HelpText = "Method store folders, comma-separated.")]
    public IEnumerable<string> Stores { get; set; } = [];

    [Option("seeds", Default = "0:50", HelpText = "The queries: images generated from these seeds, start:end (end exclusive) or a list 3,5,9.")]
    public string Seeds { get; set; } = "0:50";

    [Option("top", Default = 10, HelpText = "k of each query's top-k list.")]
    public int Top { get; set; }

    [Option("fraction", Default = 0.2, HelpText = "A training image counts when it is in the top-k of more than this share of the queries.")]
    public double Fraction { get; set; }

    [Option("label", HelpText = "For stores of a class-conditional model: the class label every query is generated with and attributed under.")]
    public long? Label { get; set; }

    [Option("prompt", HelpText = "For stores of a text-conditioned model: the prompt every query is generated with and attributed under.")]
    public string? Prompt { get; set; }

    [Option("steps", Default = 50)]
    public int Steps { get; set; }

    [Option("sampler", Default = SamplerKind.Ddim)]
    public SamplerKind Sampler { get; set; }

    [Option("out", Default = "influential.json", HelpText = "The JSON report.")]
    public string Out { get; set; } = "influential.json";

    [Option("json", HelpText = "Also print the report as JSON on stdout.")]
    public bool Json { get; set; }

    /// <inheritdoc/>
    public void Validate()
    {
        if (!Stores.Any())
        {
            throw new UserInputException("--stores: give at least one method store folder");
        }
        var seeds = SubsetSpec.Parse(Seeds);
        if (seeds.IsAll || (seeds.ExplicitIndices is null && seeds.End is null))
        {
            throw new UserInputException($"--seeds '{Seeds}': give a range with an end, e.g. 0:50, or a list 3,5,9");
        }
        long count = seeds.ExplicitIndices?.Count ?? ((long)seeds.End!.Value - (seeds.Start ?? 0));
        if (count > OptionChecks.MaxQueries)
        {
            throw new UserInputException($"--seeds '{Seeds}': {count} queries; at most {OptionChecks.MaxQueries} per run");
        }
        OptionChecks.AtLeast(Top, 1, "--top");
        OptionChecks.Fraction(Fraction, "--fraction");
        OptionChecks.AtLeast(Steps, 1, "--steps");
        ValidateSession();
        OptionChecks.OutputFile(Out, "--out");
    }
}

internal static class InfluentialCommand
{
    public static int Run(InfluentialVerb o, CancellationToken cancel)
    {
        var stores = o.Stores.ToList();
        var seeds = SubsetSpec.Parse(o.Seeds).Resolve(int.MaxValue).Select(s => (long)s).ToArray();
        var session = o.Session;
        // Queries are generated once per model: stores of the same model are compared on the same images.
        var queriesByModel = new Dictionary<string, List<AttributionQuery>>(StringComparer.Ordinal);
        var results = new List<object>();
        foreach (var store in stores)
        {
            var modelDir = StoreSource.TryLoad(store)?.ModelDirectory
                ?? throw new UserInputException($"{store} has no {StoreFiles.Source}: cannot tell which model generates the queries");
            var model = ModelDirectory.Open(modelDir);
            if (!queriesByModel.TryGetValue(model.Path, out var queries))
            {
                Output.Note($"generating {seeds.Length} queries with {modelDir} ({o.Sampler.ToString().ToLowerInvariant()}, {o.Steps} steps)");
                queries = GeneratedQueries.Generate(model, seeds, o.Sampler, o.Steps, session, cancel,
                    Runtime.Models.ConditionSpec.Query(model.Metadata.Condition, o.Label, o.Prompt, "--label", "--prompt") is long label ? new QueryCondition([label]) : null);
                queriesByModel[model.Path] = queries;
            }
            var clock = System.Diagnostics.Stopwatch.StartNew();
            using var scorer = AttributionMethods.Open(store, modelDir, session);
            var summary = GenerallyInfluential.Of(scorer.TopK(queries, o.Top, cancel), o.Fraction);
            double seconds = clock.Elapsed.TotalSeconds;
            results.Add(new { store, method = scorer.Method, rows = scorer.Rows, generallyInfluential = summary.Count, summary, seconds });
            Console.WriteLine($"{store} ({scorer.Method}): {summary.Count} training images are in the top-{o.Top} of more than {o.Fraction:P0} of {seeds.Length} queries"
                + $" ({summary.DistinctRows} distinct images in all top-{o.Top} lists; most frequent: "
                + string.Join(", ", summary.MostFrequent.Take(5).Select(r => $"#{r.Row} in {r.Queries}")) + ")");
        }
        var report = new { seeds = o.Seeds, queries = seeds.Length, top = o.Top, fraction = o.Fraction, sampler = o.Sampler, steps = o.Steps, stores = results };
        JsonFile.Save(o.Out, report);
        Output.Note($"wrote {o.Out}");
        if (o.Json)
        {
            Output.WriteJson(report);
        }
        return CliApp.Ok;
    }
}
