using CommandLine;
using OnnxAttribution.Core.Store;
using OnnxAttribution.Core;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Imaging;
using OnnxAttribution.Core.Runtime;
using OnnxAttribution.Core.Sampling;

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
    /// <summary>A training row's caption for a text-conditioned model (what it was featurized under), else null.</summary>
    private static string? CaptionOf(Core.Models.ConditionSpec? condition, Core.Data.ImageDataset? data, long row) =>
        condition is { Kind: Core.Models.ConditionKind.Text } && data?.Labels is { } labels && labels[checked((int)row)] < condition.ClassNames.Count
            ? condition.DecodePrompt(condition.EncodePrompt(Core.Data.Captions.Of(data.Image(checked((int)row)), condition.ClassNames[labels[checked((int)row)]]), "caption"))
            : null;

    /// <summary>The store's scorer, or with --combine-with the combination of it and the other stores' (checked to share its model and rows).</summary>
    /// <exception cref="UserInputException">Another store is of other rows or another model, or a store has removed rows.</exception>
    private static IAttributionScorer OpenScorer(AttributeVerb o, StoreSource? source, string modelDir, SessionSettings session)
    {
        var others = o.CombineWith.ToList();
        if (others.Count == 0)
        {
            return AttributionMethods.Open(o.Store, modelDir, session);
        }
        var scorers = new List<IAttributionScorer>();
        try
        {
            foreach (var store in others.Prepend(o.Store))
            {
                var other = StoreSource.TryLoad(store);
                if (store != o.Store && (other is null || source is null || other with { ModelDirectory = Path.GetFullPath(other.ModelDirectory) }
                    != source with { ModelDirectory = Path.GetFullPath(source.ModelDirectory) }))
                {
                    throw new UserInputException($"--combine-with {store}: built on {other?.ModelDirectory ?? "(no source.json)"} rows {other?.Subset}; " +
                        $"{o.Store} on {source?.ModelDirectory} rows {source?.Subset}: a combination scores one model's training rows");
                }
                string metaPath = Path.Combine(store, StoreFiles.Meta);
                if (File.Exists(metaPath) && StoreMeta.Load(metaPath).RemovedRows is { Count: > 0 })
                {
                    throw new UserInputException($"--combine-with: {store} has removed rows; a combination of stores scores stores without removals");
                }
                scorers.Add(AttributionMethods.Open(store, modelDir, session));
            }
            return new CombinedScorer(scorers);
        }
        catch
        {
            scorers.ForEach(sc => sc.Dispose());
            throw;
        }
    }

    /// <summary>Most training images per query drawn in the grid (a picture wider than this is no use, and its size would grow with --top).</summary>
    private const int MaxGridColumns = 100;

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
        using var scorer = OpenScorer(o, source, modelDir, session);
        var model = ModelDirectory.Open(modelDir);
        var meta = model.Metadata;
        int c = meta.Channels, s = meta.ImageSize, d = c * s * s;

        List<AttributionQuery> queryList;
        if (o.Seed is long seed)
        {
            var seeds = Enumerable.Range(0, o.Count).Select(k => seed + k).ToArray();
            queryList = GeneratedQueries.Generate(model, seeds, o.Sampler, o.Steps, session, cancel,
                Core.Models.ConditionSpec.Query(meta.Condition, o.Label, o.Prompt, "--label", "--prompt") is long value ? new QueryCondition([value], o.Guidance)
                : o.Guidance != 1.0 ? throw new UserInputException($"--guidance {o.Guidance}: the model is unconditional; leave --guidance out") : null);
        }
        else
        {
            var (pixels, _, _, _) = PngImage.Read(o.Image!, c, s);
            queryList = [new AttributionQuery(Path.GetFileName(o.Image!), pixels) { Condition = Core.Models.ConditionSpec.Query(meta.Condition, o.Label, o.Prompt, "--label", "--prompt") }];
        }
        int count = queryList.Count;
        var queries = TrakMethod.Images(queryList);
        var labels = queryList.Select(q => q.Label).ToList();
        double generateSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        // A stepwise method (journey-trak) scores every step once; its overall ranking is the mean over the steps.
        var stepScores = scorer is IStepwiseScorer stepwise ? stepwise.StepScores(queryList, cancel) : null;
        var overall = stepScores is null ? scorer.Scores(queryList, cancel) : IStepwiseScorer.MeanOverSteps(stepScores, count, ((IStepwiseScorer)scorer).Steps.Count, scorer.Rows);
        // No more than the store holds: memory stays in proportion to the store, whatever --top asks.
        int topK = (int)Math.Min(o.Top, scorer.Rows);
        var top = Enumerable.Range(0, count).Select(q => TopKSelection.Select(overall.AsSpan(checked((int)(q * scorer.Rows)), checked((int)scorer.Rows)), topK)).ToArray();
        double attributeSeconds = clock.Elapsed.TotalSeconds;

        // The training images for the grid: the store's dataset, as featurized.
        var data = source?.LoadData();
        int shown = Math.Min(topK, MaxGridColumns);
        if (shown < topK)
        {
            Output.Note($"the grid shows the first {shown} of the top {topK} of each query; the ranking lists all of them");
        }
        int columns = shown + 1;
        var tiles = new float[checked(count * columns * d)];
        var captions = new List<string?>();
        for (int q = 0; q < count; q++)
        {
            queries.AsSpan(q * d, d).CopyTo(tiles.AsSpan(q * columns * d, d));
            captions.Add($"query {labels[q]}");
            for (int r = 0; r < Math.Min(top[q].Count, shown); r++)
            {
                long row = top[q].Indices[r];
                if (data is not null)
                {
                    data.Image(checked((int)row)).CopyTo(tiles.AsSpan((q * columns + 1 + r) * d, d));
                }
                captions.Add($"#{row} {top[q].Scores[r]:0.###}");
            }
            for (int r = Math.Min(top[q].Count, shown); r < shown; r++)
            {
                captions.Add(null);
            }
        }
        var grid = ImageGrid.Write(o.Out, tiles, count * columns, c, s, s, new GridLayout(columns, o.Scale), captions);
        if (grid.Note is not null)
        {
            Output.Note(grid.Note);
        }
        var queryPng = Path.ChangeExtension(o.Out, null) + "-query.png";
        PngImage.Write(queryPng, queries.AsSpan(0, d), c, s, s, 8);
        // Methods that score each step of the trajectory (journey-trak): a picture per query and the per-step rankings.
        var journeys = stepScores is null
            ? null
            : AttributeJourney.Write((IStepwiseScorer)scorer, stepScores, queryList, top, data, model, session, o.Out, topK, o.Scale);

        // The library's result shape, as the edge tool and the server answer.
        var rankings = Enumerable.Range(0, count).Select(q => new QueryRanking(labels[q], top[q].Indices.Select((row, r) =>
            new RankedRow(r + 1, row, top[q].Scores[r], data?.Labels is { } l ? l[checked((int)row)] : null) { Caption = CaptionOf(meta.Condition, data, row) }).ToList())
        {
            Condition = queryList[q].Condition,
            Prompt = meta.Condition?.PromptOf(queryList[q].Condition),
        }).ToList();
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
                method = scorer.Method,
                rows = scorer.Rows,
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
            Console.WriteLine($"wrote {o.Out} and {queryPng}; attribution took {attributeSeconds * 1000:F0} ms for {count} quer{(count == 1 ? "y" : "ies")} " +
                $"over {scorer.Rows} rows with {scorer.Method}");
        }
        return CliApp.Ok;
    }
}
