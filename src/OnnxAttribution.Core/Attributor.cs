using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Imaging;
using OnnxAttribution.Runtime;
using OnnxAttribution.Runtime.Sampling;
using OnnxAttribution.Store;

namespace OnnxAttribution;

/// <summary>
/// The engine in one type: opens a model and a finished method store (or several methods' stores of one training set,
/// combined), attributes images (pixels, PNG files or streams) or images generated from seeds, and returns each query's
/// ranked training rows. Also builds stores. The CLI's <c>attribute</c>, the HTTP server and the edge tool all answer
/// through this type: a query is ranked the same way whichever of them asks.
/// </summary>
/// <remarks>
/// An instance holds the store's mapped files and ONNX Runtime sessions until <see cref="Dispose"/>. It is not meant to
/// be called from several threads at once. A batch of queries is scored with one scan of the store, so attributing many
/// images in one call costs much less than one call per image.
/// </remarks>
public sealed partial class Attributor : IDisposable
{
    /// <summary>The most training images per query <see cref="WriteGrid"/> draws: a wider picture is no use, and its size would grow with the top.</summary>
    public const int MaxGridColumns = 100;

    private readonly IAttributionScorer _scorer;
    private readonly ModelDirectory _model;
    private readonly SessionSettings _session;
    private readonly StoreSource? _source;
    private readonly Lock _denoiserGate = new();
    private ImageDataset? _trainingData;
    private OnnxDenoiser? _denoiser;
    private bool _disposed;

    private Attributor(IAttributionScorer scorer, ModelDirectory model, SessionSettings session, string storeDirectory, StoreSource? source, string name)
    {
        _scorer = scorer;
        _model = model;
        _session = session;
        _source = source;
        StoreDirectory = storeDirectory;
        Name = name;
    }

    /// <summary>The method of the store (e.g. "d-trak"; a combination's methods joined by '+').</summary>
    public string Method => _scorer.Method;

    /// <summary>N, the number of training rows every query is scored against.</summary>
    public long Rows => _scorer.Rows;

    /// <summary>The model's channels (1 or 3): query pixels are C·H·W values.</summary>
    public int Channels => _model.Metadata.Channels;

    /// <summary>The model's image size (H = W).</summary>
    public int ImageSize => _model.Metadata.ImageSize;

    /// <summary>The condition every query must carry (<see cref="AttributionQuery.Condition"/>) for a conditional model; null otherwise.</summary>
    public Runtime.Models.ConditionSpec? Condition => _model.Metadata.Condition;

    /// <summary>The store folder (of a combination: the first store's).</summary>
    public string StoreDirectory { get; }

    /// <summary>How errors name the store: its folder, or the name it was opened under (a server's store name).</summary>
    public string Name { get; }

    /// <summary>The model folder (full path).</summary>
    public string ModelDirectory => _model.Path;

    /// <summary>
    /// When true, each ranked row also carries its training image's class label and, for a text-conditioned model, the
    /// caption it was featurized under (<see cref="RankedRow.Label"/>, <see cref="RankedRow.Caption"/>): the training data
    /// of the store's source.json is loaded on the first query. False (the default): rank, row and score only.
    /// </summary>
    public bool RowDetails { get; set; }

    /// <summary>
    /// The scorer underneath, for what this type does not cover (all scores of a query, per-step scores of a stepwise
    /// method). It belongs to this instance: do not dispose it.
    /// </summary>
    public IAttributionScorer Scorer => _scorer;

    /// <summary>Opens a model folder and a finished method store of any method.</summary>
    /// <param name="modelDirectory">The model the store was built from.</param>
    /// <param name="storeDirectory">The method store (for TRAK and D-TRAK: featurized and finalized).</param>
    /// <param name="session">ONNX Runtime settings; null for the CPU with its default threads.</param>
    /// <exception cref="ArgumentNullException">A folder is null.</exception>
    /// <exception cref="ModelFileException">The model folder or its model.json is missing or invalid.</exception>
    /// <exception cref="UserInputException">The store folder is not a finished method store.</exception>
    /// <exception cref="StoreFormatException">A store file is damaged or does not fit the model.</exception>
    public static Attributor Open(string modelDirectory, string storeDirectory, SessionSettings? session = null)
    {
        ArgumentNullException.ThrowIfNull(storeDirectory);
        return Open(modelDirectory, [storeDirectory], session);
    }

    /// <summary>
    /// Opens a model folder and one or more finished method stores of its training rows. Two or more stores are scored
    /// as one (<see cref="CombinedScorer"/>: each store's scores standardised per query and averaged).
    /// </summary>
    /// <param name="modelDirectory">The model the stores were built from.</param>
    /// <param name="storeDirectories">The stores; the first names the training data (its source.json).</param>
    /// <param name="session">ONNX Runtime settings; null for the CPU with its default threads.</param>
    /// <exception cref="ArgumentNullException">An argument or a folder is null.</exception>
    /// <exception cref="ArgumentException">No store is given.</exception>
    /// <exception cref="ModelFileException">The model folder or its model.json is missing or invalid.</exception>
    /// <exception cref="UserInputException">A store folder is not a finished method store; of a combination, a store is of
    /// other rows or another model than the first, or has removed rows.</exception>
    /// <exception cref="StoreFormatException">A store file is damaged or does not fit the model.</exception>
    public static Attributor Open(string modelDirectory, IReadOnlyList<string> storeDirectories, SessionSettings? session = null)
    {
        ArgumentNullException.ThrowIfNull(modelDirectory);
        ArgumentNullException.ThrowIfNull(storeDirectories);
        if (storeDirectories.Count == 0)
        {
            throw new ArgumentException("give at least one store folder", nameof(storeDirectories));
        }
        foreach (var store in storeDirectories)
        {
            ArgumentNullException.ThrowIfNull(store, nameof(storeDirectories));
            if (!Directory.Exists(store))
            {
                throw new UserInputException($"store folder not found: {store}");
            }
        }
        var model = Runtime.ModelDirectory.Open(modelDirectory);
        var settings = session ?? SessionSettings.Default;
        var source = StoreSource.TryLoad(storeDirectories[0]);
        var scorer = storeDirectories.Count == 1
            ? AttributionMethods.Open(storeDirectories[0], model.Path, settings)
            : OpenCombination(storeDirectories, source, model.Path, settings);
        return new Attributor(scorer, model, settings, storeDirectories[0], source, storeDirectories[0]);
    }

    /// <summary>
    /// Answers through a scorer opened elsewhere (e.g. a cluster's, or one on its own threads), which the new instance owns
    /// and disposes.
    /// </summary>
    /// <param name="scorer">The store's scorer.</param>
    /// <param name="modelDirectory">The model the store was built from.</param>
    /// <param name="storeDirectory">The store folder (its source.json names the training data).</param>
    /// <param name="session">The settings the model's sessions open with (sampling); null for the CPU with its default threads.</param>
    /// <param name="name">How errors name the store; null for its folder.</param>
    /// <exception cref="ArgumentNullException">The scorer or a folder is null.</exception>
    /// <exception cref="ModelFileException">The model folder or its model.json is missing or invalid.</exception>
    public static Attributor Over(IAttributionScorer scorer, string modelDirectory, string storeDirectory, SessionSettings? session = null, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(scorer);
        ArgumentNullException.ThrowIfNull(modelDirectory);
        ArgumentNullException.ThrowIfNull(storeDirectory);
        var model = Runtime.ModelDirectory.Open(modelDirectory);
        return new Attributor(scorer, model, session ?? SessionSettings.Default, storeDirectory, StoreSource.TryLoad(storeDirectory), name ?? storeDirectory);
    }

    /// <summary>The combination of several stores, checked to score the same model's training rows, none with removals.</summary>
    /// <exception cref="UserInputException">A store is of other rows or another model, or has removed rows.</exception>
    private static CombinedScorer OpenCombination(IReadOnlyList<string> stores, StoreSource? source, string modelDirectory, SessionSettings session)
    {
        var first = stores[0];
        var scorers = new List<IAttributionScorer>();
        try
        {
            foreach (var store in stores)
            {
                var other = StoreSource.TryLoad(store);
                if (store != first && (other is null || source is null || other with { ModelDirectory = Path.GetFullPath(other.ModelDirectory) }
                    != source with { ModelDirectory = Path.GetFullPath(source.ModelDirectory) }))
                {
                    throw new UserInputException($"--combine-with {store}: built on {other?.ModelDirectory ?? "(no source.json)"} rows {other?.Subset}; " +
                        $"{first} on {source?.ModelDirectory} rows {source?.Subset}: a combination scores one model's training rows");
                }
                string metaPath = Path.Combine(store, StoreFiles.Meta);
                if (File.Exists(metaPath) && StoreMeta.Load(metaPath).RemovedRows is { Count: > 0 })
                {
                    throw new UserInputException($"--combine-with: {store} has removed rows; a combination of stores scores stores without removals");
                }
                scorers.Add(AttributionMethods.Open(store, modelDirectory, session));
            }
            return new CombinedScorer(scorers);
        }
        catch
        {
            scorers.ForEach(sc => sc.Dispose());
            throw;
        }
    }

    /// <summary>Builds (or finishes building) a method store; a rerun after an interruption continues where it stopped.</summary>
    /// <param name="options">The method, model, training data and store folder.</param>
    /// <param name="progress">Reports each stage of the build (e.g. featurizing, finalizing) with its rows done; may be null.</param>
    /// <param name="cancel">Stops the build between batches; what was written so far is kept for the rerun.</param>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is null.</exception>
    /// <exception cref="UserInputException">The method, the data, the subset or a setting is not valid.</exception>
    /// <exception cref="SettingException">A setting is changed from its default that the method does not use.</exception>
    /// <exception cref="ModelFileException">The model folder is missing a file the method needs.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancel"/> was cancelled.</exception>
    public static void BuildStore(StoreBuildOptions options, IProgress<MethodProgress>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var method = AttributionMethods.Find(options.Method);
        options.Settings.RequireUsedBy(method);
        var model = Runtime.ModelDirectory.Open(options.ModelDirectory);
        AttributionMethods.RequireConditionSupport(method, model.Path);
        int size = model.Metadata.ImageSize;
        method.Build(new MethodBuildRequest
        {
            ModelDirectory = model.Path,
            Data = new DatasetLocator().Load(options.Data, options.Subset, size),
            Source = new StoreSource(model.Path, options.Data, options.Subset, size),
            OutDirectory = options.StoreDirectory,
            Settings = options.Settings,
            Session = options.Session,
            Progress = progress,
        }, cancel);
    }

    /// <summary>Attributes one image given as pixels.</summary>
    /// <param name="pixels">C·H·W values in [-1, 1] (CHW order), of the model's geometry.</param>
    /// <param name="top">How many rows to return.</param>
    /// <param name="label">The query's label in the result.</param>
    /// <param name="cancel">Stops the scan of the store.</param>
    /// <exception cref="ArgumentNullException"><paramref name="pixels"/> or <paramref name="label"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="top"/> is negative.</exception>
    /// <exception cref="UserInputException">The pixel count is not the model's C·H·W.</exception>
    /// <exception cref="ObjectDisposedException">This instance was disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancel"/> was cancelled.</exception>
    public QueryRanking Attribute(float[] pixels, int top, string label = "image", CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(label);
        return Attribute([new AttributionQuery(label, pixels)], top, null, cancel)[0];
    }

    /// <summary>Attributes a batch of queries with one scan of the store.</summary>
    /// <param name="queries">The queries (pixels of the model's geometry; a trajectory where the method needs one).</param>
    /// <param name="top">How many rows to return per query.</param>
    /// <param name="progress">Reports the stage "score" at its start (0 of the queries) and end; may be null.</param>
    /// <param name="cancel">Stops the scan of the store.</param>
    /// <exception cref="ArgumentNullException"><paramref name="queries"/> or one of them is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="top"/> is negative.</exception>
    /// <exception cref="UserInputException">A query's pixel count is not the model's C·H·W, or the method needs a trajectory it lacks.</exception>
    /// <exception cref="ObjectDisposedException">This instance was disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancel"/> was cancelled.</exception>
    public IReadOnlyList<QueryRanking> Attribute(IReadOnlyList<AttributionQuery> queries, int top, IProgress<MethodProgress>? progress = null, CancellationToken cancel = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(queries);
        ArgumentOutOfRangeException.ThrowIfNegative(top);
        int d = Channels * ImageSize * ImageSize;
        for (int q = 0; q < queries.Count; q++)
        {
            var query = queries[q] ?? throw new ArgumentNullException(nameof(queries), $"query {q} is null");
            if (query.Image.Length != d)
            {
                throw new UserInputException($"query {q} ('{query.Label}'): {query.Image.Length} pixel values; the model at {ModelDirectory} takes {Channels}×{ImageSize}×{ImageSize} = {d}");
            }
        }
        if (queries.Count == 0)
        {
            return [];
        }
        // The scorers check the token between chunks of the store; a small store has one chunk, so check once here too.
        cancel.ThrowIfCancellationRequested();
        progress?.Report(new MethodProgress("score", 0, queries.Count));
        // No more than the store holds: memory stays in proportion to the store, whatever the top asks. A stepwise
        // scorer's ranking is by its mean over the steps.
        var best = _scorer.TopK(queries, (int)Math.Min(top, Rows), cancel);
        var rankings = queries.Select((query, q) => Rank(query, best[q], best[q].Count)).ToList();
        progress?.Report(new MethodProgress("score", queries.Count, queries.Count));
        return rankings;
    }

    /// <summary>
    /// Ranks queries whose scores the caller already has (e.g. a stepwise scorer's mean over its steps, computed with the
    /// per-step scores it also shows), as <see cref="Attribute(IReadOnlyList{AttributionQuery}, int, IProgress{MethodProgress}, CancellationToken)"/> would.
    /// </summary>
    /// <param name="queries">The queries scored.</param>
    /// <param name="scores">Their scores, queries × <see cref="Rows"/>, query-major.</param>
    /// <param name="top">How many rows to return per query (at most <see cref="Rows"/>).</param>
    /// <exception cref="ArgumentNullException"><paramref name="queries"/> is null.</exception>
    /// <exception cref="ArgumentException">The number of scores is not queries × rows.</exception>
    /// <exception cref="StoreFormatException">A score among the best is NaN or infinite.</exception>
    public IReadOnlyList<QueryRanking> Rank(IReadOnlyList<AttributionQuery> queries, ReadOnlySpan<float> scores, int top)
    {
        ArgumentNullException.ThrowIfNull(queries);
        ArgumentOutOfRangeException.ThrowIfNegative(top);
        int n = checked((int)Rows);
        if (scores.Length != (long)queries.Count * n)
        {
            throw new ArgumentException($"{queries.Count} queries × {n} rows need {(long)queries.Count * n} scores, got {scores.Length}", nameof(scores));
        }
        var rankings = new List<QueryRanking>(queries.Count);
        for (int q = 0; q < queries.Count; q++)
        {
            rankings.Add(Rank(queries[q], TopKSelection.Select(scores.Slice(q * n, n), Math.Min(top, n)), top));
        }
        return rankings;
    }

    /// <summary>
    /// A query's ranking from its best rows as a scorer returned them (<see cref="IAttributionScorer.TopK"/>): the first
    /// <paramref name="top"/>, with the query's condition and prompt, and each row's details when <see cref="RowDetails"/>
    /// asks for them. The one place rankings are made: <see cref="Attribute(IReadOnlyList{AttributionQuery}, int, IProgress{MethodProgress}, CancellationToken)"/>
    /// and <see cref="Rank(IReadOnlyList{AttributionQuery}, ReadOnlySpan{float}, int)"/> end here, and so does a server that
    /// scores several requests' queries with one call of the scorer.
    /// </summary>
    /// <param name="query">The query scored.</param>
    /// <param name="best">Its best rows, best first.</param>
    /// <param name="top">How many of them to keep.</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="StoreFormatException">A kept score is NaN or infinite: the store or its model is damaged.</exception>
    public QueryRanking Rank(AttributionQuery query, TopKResult best, int top)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(best);
        var rows = Ranked(Name, query, best, top);
        if (RowDetails && _source is not null)
        {
            var data = TrainingData;
            rows = rows.ConvertAll(row => row with
            {
                Label = data.Labels is { } labels ? labels[checked((int)row.Index)] : null,
                Caption = CaptionOf(data, row.Index),
            });
        }
        return new QueryRanking(query.Label, rows)
        {
            Condition = query.Condition,
            Prompt = Condition?.PromptOf(query.Condition),
        };
    }

    /// <summary>A training row's caption for a text-conditioned model (what it was featurized under), else null.</summary>
    private string? CaptionOf(ImageDataset data, long row)
    {
        int i = checked((int)row);
        return Condition is { Kind: Runtime.Models.ConditionKind.Text } condition && data.Labels is { } labels && labels[i] < condition.ClassNames.Count
            ? condition.DecodePrompt(condition.EncodePrompt(Captions.Of(data.Image(i), condition.ClassNames[labels[i]]), "caption"))
            : null;
    }

    /// <summary>A query's best rows, the first <paramref name="top"/> of them; a non-finite score is an error, never an answer.</summary>
    /// <param name="store">How the message names the store.</param>
    /// <param name="query">The query (its label names it in the message).</param>
    /// <param name="best">Its best rows, best first.</param>
    /// <param name="top">How many to keep.</param>
    /// <exception cref="StoreFormatException">A score is NaN or infinite: the store or its model is damaged.</exception>
    internal static List<RankedRow> Ranked(string store, AttributionQuery query, TopKResult best, int top)
    {
        var rows = new List<RankedRow>(Math.Min(top, best.Indices.Length));
        for (int r = 0; r < best.Indices.Length && r < top; r++)
        {
            float score = best.Scores[r];
            if (!float.IsFinite(score))
            {
                throw new StoreFormatException(
                    $"store '{store}': query '{query.Label}' scored {score.ToString(System.Globalization.CultureInfo.InvariantCulture)} at row " +
                    $"{best.Indices[r]}; the store or its model holds non-finite values (run verify on the store)");
            }
            rows.Add(new RankedRow(r + 1, best.Indices[r], score));
        }
        return rows;
    }

    /// <summary>Attributes a PNG file (resized to the model's size by area averaging, converted to its channels).</summary>
    /// <param name="path">The PNG (or any image SkiaSharp decodes); its file name is the query's label.</param>
    /// <param name="top">How many rows to return.</param>
    /// <param name="cancel">Stops the scan of the store.</param>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="top"/> is negative.</exception>
    /// <exception cref="UserInputException">The file is missing or not a decodable image.</exception>
    /// <exception cref="ObjectDisposedException">This instance was disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancel"/> was cancelled.</exception>
    public QueryRanking AttributePng(string path, int top, CancellationToken cancel = default) =>
        Attribute([ReadPng(path)], top, null, cancel)[0];

    /// <summary>Attributes an encoded PNG read from a stream (to its end), as <see cref="AttributePng(string, int, CancellationToken)"/> does a file.</summary>
    /// <param name="png">The encoded image.</param>
    /// <param name="top">How many rows to return.</param>
    /// <param name="label">The query's label in the result.</param>
    /// <param name="cancel">Stops the scan of the store.</param>
    /// <exception cref="ArgumentNullException"><paramref name="png"/> or <paramref name="label"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="top"/> is negative.</exception>
    /// <exception cref="UserInputException">The bytes are not a decodable image.</exception>
    /// <exception cref="ObjectDisposedException">This instance was disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancel"/> was cancelled.</exception>
    public QueryRanking AttributePng(Stream png, int top, string label = "image", CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(png);
        ArgumentNullException.ThrowIfNull(label);
        using var buffer = new MemoryStream();
        png.CopyTo(buffer);
        var (pixels, _, _, _) = PngImage.Read(buffer.GetBuffer().AsSpan(0, checked((int)buffer.Length)), label, Channels, ImageSize);
        return Attribute([new AttributionQuery(label, pixels)], top, null, cancel)[0];
    }

    /// <summary>Reads a PNG file as a query of the model's geometry (resized, converted to its channels), labelled with its file name.</summary>
    /// <param name="path">The image file.</param>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="UserInputException">The file is missing or not a decodable image.</exception>
    public AttributionQuery ReadPng(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var (pixels, _, _, _) = PngImage.Read(path, Channels, ImageSize);
        return new AttributionQuery(Path.GetFileName(path), pixels);
    }

    /// <summary>
    /// Generates one image per seed with the model (as the CLI's <c>generate</c> does, trajectories kept for the methods
    /// that attribute them) and attributes them all with one scan of the store. Labels are "seed N".
    /// </summary>
    /// <param name="seeds">The seeds.</param>
    /// <param name="top">How many rows to return per query.</param>
    /// <param name="sampler">The sampler.</param>
    /// <param name="steps">Sampling steps.</param>
    /// <param name="progress">Reports the stages "generate" and "score", each at its start and end; may be null.</param>
    /// <param name="cancel">Stops sampling between steps, or the scan of the store.</param>
    /// <exception cref="ArgumentNullException"><paramref name="seeds"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="top"/> is negative.</exception>
    /// <exception cref="UserInputException">The step count is out of range for the model's schedule.</exception>
    /// <exception cref="ModelFileException">The model has no forward graph.</exception>
    /// <exception cref="ObjectDisposedException">This instance was disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancel"/> was cancelled.</exception>
    /// <param name="condition">For a class-conditional model: the labels and guidance to generate with; each query is attributed under its label.</param>
    public IReadOnlyList<QueryRanking> AttributeSeeds(IReadOnlyList<long> seeds, int top, SamplerKind sampler = SamplerKind.Ddim, int steps = 50,
        IProgress<MethodProgress>? progress = null, CancellationToken cancel = default, QueryCondition? condition = null) =>
        Attribute(GenerateQueries(seeds, sampler, steps, progress, cancel, condition), top, progress, cancel);

    /// <summary>Generates one query per seed, as <see cref="AttributeSeeds"/> does before scoring (to keep the images).</summary>
    /// <param name="seeds">The seeds.</param>
    /// <param name="sampler">The sampler.</param>
    /// <param name="steps">Sampling steps.</param>
    /// <param name="progress">Reports the stage "generate" at its start and end; may be null.</param>
    /// <param name="cancel">Stops sampling between steps.</param>
    /// <exception cref="ArgumentNullException"><paramref name="seeds"/> is null.</exception>
    /// <exception cref="UserInputException">The step count is out of range for the model's schedule.</exception>
    /// <exception cref="ModelFileException">The model has no forward graph.</exception>
    /// <exception cref="ObjectDisposedException">This instance was disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancel"/> was cancelled.</exception>
    /// <param name="condition">For a class-conditional model: the labels (one for all or one per seed) and guidance; null otherwise.</param>
    public IReadOnlyList<AttributionQuery> GenerateQueries(IReadOnlyList<long> seeds, SamplerKind sampler = SamplerKind.Ddim, int steps = 50,
        IProgress<MethodProgress>? progress = null, CancellationToken cancel = default, QueryCondition? condition = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(seeds);
        cancel.ThrowIfCancellationRequested();
        progress?.Report(new MethodProgress("generate", 0, seeds.Count));
        var queries = GeneratedQueries.Generate(Denoiser(), _model.CreateSchedule(), seeds, sampler, steps, cancel, condition);
        progress?.Report(new MethodProgress("generate", seeds.Count, seeds.Count));
        return queries;
    }

    /// <summary>The model's forward graph for sampling, opened on first use and kept until <see cref="Dispose"/>.</summary>
    private OnnxDenoiser Denoiser()
    {
        lock (_denoiserGate)
        {
            return _denoiser ??= _model.OpenDenoiser(_session);
        }
    }

    /// <summary>Closes the store and the model's sessions.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _scorer.Dispose();
            _denoiser?.Dispose();
        }
    }
}
