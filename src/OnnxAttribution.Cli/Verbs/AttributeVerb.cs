using CommandLine;
using OnnxAttribution.Store;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Imaging;
using OnnxAttribution.Runtime;
using OnnxAttribution.Runtime.Sampling;

namespace OnnxAttribution.Cli.Verbs;
[Verb("attribute", HelpText = "Attribute generated images (--seed) or a given image (--image) to training images with a method store: " +
    "writes a grid (each query beside its top-k training images, with scores) and prints the ranking (--json for machines).")]
internal sealed class AttributeVerb : SessionVerbOptions, IVerbOptions
{
    [Option("store", Required = true, HelpText = "A method store folder (trak/d-trak: featurized and finalized; others: built by 'featurize --method').")]
    public string Store { get; set; } = "";

    [Option("method", HelpText = "The method expected (checked against the store; the store decides by default).")]
    public string? Method { get; set; }

    [Option("combine-with", Separator = ',', HelpText = "Other methods' stores of the same model and training rows, comma-separated: each " +
        "query's scores are the standardised mean of every store's (docs/results/presets.md: D-TRAK + K-FAC + DAS on a LoRA fine-tune). " +
        "Stores with removed rows are refused.")]
    public IEnumerable<string> CombineWith { get; set; } = [];

    [Option("model", HelpText = "Model folder (default: the one the store was featurized with, from source.json).")]
    public string? Model { get; set; }

    [Option("seed", HelpText = "Generate the query from this seed (with --steps, --sampler), as 'generate' does.")]
    public long? Seed { get; set; }

    [Option("count", Default = 1, HelpText = "With --seed: attribute seeds seed … seed+count−1 in one batch (one scan of the store); 1 to 1024.")]
    public int Count { get; set; }

    [Option("image", HelpText = "A PNG to attribute instead (resized to the model's size, converted to its channels).")]
    public string? Image { get; set; }

    [Option("label", HelpText = "For a class-conditional model: the query's class label — the one a --seed query is generated with, or the one " +
        "a given --image is attributed under. Required for such a model, refused for an unconditional one.")]
    public long? Label { get; set; }

    [Option("prompt", HelpText = "For a text-conditioned model (train --condition text): the query's prompt, e.g. \"a dark sneaker\" — the one a " +
        "--seed query is generated with, or the one a given --image is attributed under. Words from the model's vocabulary (inspect lists it).")]
    public string? Prompt { get; set; }

    [Option("guidance", Default = 1.0, HelpText = "With --seed and --label or --prompt: the classifier-free guidance scale the query is generated with " +
        "(its features are always gradients of the conditional prediction).")]
    public double Guidance { get; set; } = 1.0;

    [Option("steps", Default = 50)]
    public int Steps { get; set; }

    [Option("sampler", Default = SamplerKind.Ddim)]
    public SamplerKind Sampler { get; set; }

    [Option("query-timesteps", Default = 0, HelpText = "The fast query setting (trak, d-trak, das): measure the query at this many of the store's K timesteps, spread evenly; 0: all K.")]
    public int QueryTimesteps { get; set; }

    [Option("top", Default = 16, HelpText = "How many training images to return per query (at most the store's rows; the grid shows the first 100).")]
    public int Top { get; set; }

    [Option("out", Default = "attribution.png", HelpText = "The grid PNG: one row per query, the query first.")]
    public string Out { get; set; } = "attribution.png";

    [Option("scale", Default = 5, HelpText = "Upscaling of each tile (nearest neighbour), so captions fit under 16-pixel images.")]
    public int Scale { get; set; }

    [Option("json", HelpText = "Print the rankings as JSON.")]
    public bool Json { get; set; }

    /// <inheritdoc/>
    public void Validate()
    {
        OptionChecks.Given(Store, "--store");
        OptionChecks.InRange(Count, 1, OptionChecks.MaxQueries, "--count");
        OptionChecks.AtLeast(Steps, 1, "--steps");
        OptionChecks.AtLeast(Top, 1, "--top");
        OptionChecks.InRange(Scale, 1, OptionChecks.MaxScale, "--scale");
        ValidateSession();
        OptionChecks.AtLeast(QueryTimesteps, 0, "--query-timesteps");
        OptionChecks.OutputFile(Out, "--out");
    }
}

internal static class AttributeCommand
{
    public static int Run(AttributeVerb o, CancellationToken cancel)
    {
        if ((o.Seed is null) == (o.Image is null))
        {
            throw new UserInputException("give exactly one query: --seed N (generate it) or --image file.png");
        }
        var source = StoreSource.TryLoad(o.Store);
        var modelDir = o.Model ?? source?.ModelDirectory
            ?? throw new UserInputException($"{o.Store} has no {StoreFiles.Source}: pass --model");
        if (o.Method is not null && !string.Equals(AttributionMethods.MethodOf(o.Store).Name, AttributionMethods.Find(o.Method).Name, StringComparison.Ordinal))
        {
            throw new UserInputException($"--method {o.Method}: {o.Store} is a store of method {AttributionMethods.MethodOf(o.Store).Name}");
        }
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var session = o.Session with { QueryTimesteps = o.QueryTimesteps };
        using var attributor = Attributor.Open(modelDir, [o.Store, .. o.CombineWith], session);
        attributor.RowDetails = true;
        var condition = attributor.Condition;
        long? value = Runtime.Models.ConditionSpec.Query(condition, o.Label, o.Prompt, "--label", "--prompt");
        IReadOnlyList<AttributionQuery> queries;
        if (o.Seed is long seed)
        {
            var seeds = Enumerable.Range(0, o.Count).Select(k => seed + k).ToArray();
            queries = attributor.GenerateQueries(seeds, o.Sampler, o.Steps, null, cancel, value is long v ? new QueryCondition([v], o.Guidance)
                : o.Guidance != 1.0 ? throw new UserInputException($"--guidance {o.Guidance}: the model is unconditional; leave --guidance out") : null);
        }
        else
        {
            queries = [attributor.ReadPng(o.Image!) with { Condition = value }];
        }
        double generateSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        // No more than the store holds: memory stays in proportion to the store, whatever --top asks.
        int topK = (int)Math.Min(o.Top, attributor.Rows);
        // A stepwise method (journey-trak) scores every step once: its ranking is the mean over the steps, its picture each step's.
        var stepwise = attributor.Scorer as IStepwiseScorer;
        var stepScores = stepwise?.StepScores(queries, cancel);
        var rankings = stepScores is null
            ? attributor.Attribute(queries, topK, null, cancel)
            : attributor.Rank(queries, IStepwiseScorer.MeanOverSteps(stepScores, queries.Count, stepwise!.Steps.Count, attributor.Rows), topK);
        double attributeSeconds = clock.Elapsed.TotalSeconds;

        if (topK > Attributor.MaxGridColumns)
        {
            Output.Note($"the grid shows the first {Attributor.MaxGridColumns} of the top {topK} of each query; the ranking lists all of them");
        }
        var grid = attributor.WriteGrid(o.Out, queries, rankings, o.Scale);
        if (grid.Note is not null)
        {
            Output.Note(grid.Note);
        }
        var queryPng = Path.ChangeExtension(o.Out, null) + "-query.png";
        PngImage.Write(queryPng, queries[0].Image, attributor.Channels, attributor.ImageSize, attributor.ImageSize, 8);
        // Methods that score each step of the trajectory (journey-trak): a picture per query and the per-step rankings.
        var journeys = stepScores is null
            ? null
            : AttributeJourney.Write(stepwise!, stepScores, queries, rankings, source is null ? null : attributor.TrainingData,
                ModelDirectory.Open(modelDir), session, o.Out, topK, o.Scale);
        if (o.Json)
        {
            var provenance = StoreProvenance.Of(o.Store);
            Output.WriteJson(new
            {
                store = o.Store,
                storeVersion = provenance.Version,
                storeVersionId = provenance.VersionId,
                modelSha256 = provenance.ModelSha256,
                model = modelDir,
                method = attributor.Method,
                rows = attributor.Rows,
                png = o.Out,
                queryPng,
                generateSeconds,
                attributeSeconds,
                rankings,
                journeys,
            });
        }
        else
        {
            foreach (var r in rankings)
            {
                Console.WriteLine($"{r.Query}: " + string.Join("  ", r.Top.Take(10).Select(t => $"#{t.Index} ({t.Score:G3})")) + (r.Top.Count > 10 ? "  …" : ""));
            }
            foreach (var j in journeys ?? [])
            {
                Console.WriteLine($"wrote {j.Png}: {j.Query} step by step ({string.Join(", ", j.Steps.Select(x => $"t={x.Timestep} #{x.Top.FirstOrDefault()?.Index}"))})");
            }
            Console.WriteLine($"wrote {o.Out} and {queryPng}; attribution took {attributeSeconds * 1000:F0} ms for {queries.Count} quer{(queries.Count == 1 ? "y" : "ies")} " +
                $"over {attributor.Rows} rows with {attributor.Method}");
        }
        return CliApp.Ok;
    }
}
