using OnnxAttribution.Core;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Core.Imaging;
using OnnxAttribution.Core.Runtime;
using OnnxAttribution.Core.Sampling;
using OnnxAttribution.Core.Store;

namespace OnnxAttribution;

/// <summary>
/// The engine in one type: opens a model and a finished method store, attributes images (pixels, PNG files or streams)
/// or images generated from seeds, and returns each query's ranked training rows. Also builds stores.
/// </summary>
/// <remarks>
/// An instance holds the store's mapped files and ONNX Runtime sessions until <see cref="Dispose"/>. It is not meant to
/// be called from several threads at once. A batch of queries is scored with one scan of the store, so attributing many
/// images in one call costs much less than one call per image.
/// </remarks>
public sealed class Attributor : IDisposable
{
    private readonly IAttributionScorer _scorer;
    private readonly ModelDirectory _model;
    private readonly SessionSettings _session;
    private readonly StoreSource? _source;
    private ImageDataset? _trainingData;
    private bool _disposed;

    private Attributor(IAttributionScorer scorer, ModelDirectory model, SessionSettings session, string storeDirectory, StoreSource? source)
    {
        _scorer = scorer;
        _model = model;
        _session = session;
        _source = source;
        StoreDirectory = storeDirectory;
    }

    /// <summary>The method of the store (e.g. "d-trak").</summary>
    public string Method => _scorer.Method;

    /// <summary>N, the number of training rows every query is scored against.</summary>
    public long Rows => _scorer.Rows;

    /// <summary>The model's channels (1 or 3): query pixels are C·H·W values.</summary>
    public int Channels => _model.Metadata.Channels;

    /// <summary>The model's image size (H = W).</summary>
    public int ImageSize => _model.Metadata.ImageSize;

    /// <summary>The condition every query must carry (<see cref="AttributionQuery.Condition"/>) for a conditional model; null otherwise.</summary>
    public Core.Models.ConditionSpec? Condition => _model.Metadata.Condition;

    /// <summary>The store folder.</summary>
    public string StoreDirectory { get; }

    /// <summary>The model folder (full path).</summary>
    public string ModelDirectory => _model.Path;

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
        ArgumentNullException.ThrowIfNull(modelDirectory);
        ArgumentNullException.ThrowIfNull(storeDirectory);
        if (!Directory.Exists(storeDirectory))
        {
            throw new UserInputException($"store folder not found: {storeDirectory}");
        }
        var model = Core.Runtime.ModelDirectory.Open(modelDirectory);
        var settings = session ?? SessionSettings.Default;
        var scorer = AttributionMethods.Open(storeDirectory, model.Path, settings);
        return new Attributor(scorer, model, settings, storeDirectory, StoreSource.TryLoad(storeDirectory));
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
        var model = Core.Runtime.ModelDirectory.Open(options.ModelDirectory);
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
        // A stepwise scorer's Scores are its mean over the steps, as the CLI ranks them.
        var scores = _scorer.Scores(queries, cancel);
        int n = checked((int)Rows);
        var rankings = new QueryRanking[queries.Count];
        for (int q = 0; q < queries.Count; q++)
        {
            var best = TopKSelection.Select(scores.AsSpan(q * n, n), top);
            rankings[q] = new QueryRanking(queries[q].Label, best.Indices.Select((row, r) => new RankedRow(r + 1, row, best.Scores[r])).ToArray())
            {
                Condition = queries[q].Condition,
                Prompt = Condition?.PromptOf(queries[q].Condition),
            };
        }
        progress?.Report(new MethodProgress("score", queries.Count, queries.Count));
        return rankings;
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
        var queries = GeneratedQueries.Generate(_model, seeds, sampler, steps, _session, cancel, condition);
        progress?.Report(new MethodProgress("generate", seeds.Count, seeds.Count));
        return queries;
    }

    /// <summary>
    /// The training images of the store's rows (row i is image i), loaded on first use from where the store's
    /// source.json says they came from.
    /// </summary>
    /// <exception cref="UserInputException">The store has no source.json, or its dataset can no longer be loaded.</exception>
    public ImageDataset TrainingData => _trainingData ??= (_source
        ?? throw new UserInputException($"{StoreDirectory} has no {StoreFiles.Source}: the training images of its rows are unknown")).LoadData();

    /// <summary>
    /// Writes a grid PNG: one row per query, the query first, then its ranked training images captioned "#row score".
    /// </summary>
    /// <param name="path">The PNG file written.</param>
    /// <param name="queries">The queries, in the order of <paramref name="rankings"/>.</param>
    /// <param name="rankings">Their rankings (all of the same length, as
    /// <see cref="Attribute(IReadOnlyList{AttributionQuery}, int, IProgress{MethodProgress}, CancellationToken)"/> returns them).</param>
    /// <param name="scale">Integer upscaling of each tile, so captions fit under small images.</param>
    /// <returns>The grid's size, and a note when captions were left out (no usable font).</returns>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">The counts of queries and rankings differ, or there are none.</exception>
    /// <exception cref="UserInputException">The training images cannot be loaded (see <see cref="TrainingData"/>).</exception>
    public GridResult WriteGrid(string path, IReadOnlyList<AttributionQuery> queries, IReadOnlyList<QueryRanking> rankings, int scale = 5)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(queries);
        ArgumentNullException.ThrowIfNull(rankings);
        if (queries.Count != rankings.Count || queries.Count == 0)
        {
            throw new ArgumentException($"{queries.Count} queries and {rankings.Count} rankings: need the same number, at least one", nameof(rankings));
        }
        int d = Channels * ImageSize * ImageSize;
        int columns = 1 + rankings.Max(r => r.Top.Count);
        var tiles = new float[queries.Count * columns * d];
        var captions = new string?[queries.Count * columns];
        for (int q = 0; q < queries.Count; q++)
        {
            queries[q].Image.CopyTo(tiles.AsSpan(q * columns * d, d));
            captions[q * columns] = $"query {queries[q].Label}";
            foreach (var row in rankings[q].Top)
            {
                int tile = q * columns + row.Rank;
                TrainingData.Image(checked((int)row.Index)).CopyTo(tiles.AsSpan(tile * d, d));
                captions[tile] = $"#{row.Index} {row.Score:0.###}";
            }
        }
        return ImageGrid.Write(path, tiles, queries.Count * columns, Channels, ImageSize, ImageSize, new GridLayout(columns, scale), captions);
    }

    /// <summary>
    /// Checks the store beyond what opening it checks (method.json, file headers against meta.json, the model's
    /// fingerprint): every feature store in the folder has every row's features finite, and was built from the training
    /// images its source.json names (their fingerprint).
    /// </summary>
    /// <param name="progress">Reports the stage "verify FOLDER" with the rows of that feature store read; may be null.</param>
    /// <param name="cancel">Stops between rows.</param>
    /// <returns>The problems found, at most 20 per feature store (the first ones).</returns>
    /// <exception cref="StoreFormatException">A feature store's files cannot be read at all.</exception>
    /// <exception cref="UserInputException">The training images of source.json cannot be loaded.</exception>
    /// <exception cref="ObjectDisposedException">This instance was disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancel"/> was cancelled.</exception>
    public StoreCheck Verify(IProgress<MethodProgress>? progress = null, CancellationToken cancel = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        const int MaxProblems = 20;
        var folders = Directory.EnumerateFiles(StoreDirectory, StoreFiles.Meta, SearchOption.AllDirectories)
            .Select(f => Path.GetDirectoryName(f)!).Order(StringComparer.Ordinal).ToList();
        var problems = new List<string>();
        long checkedRows = 0;
        foreach (var folder in folders)
        {
            using var store = FeatureStore.Open(folder);
            if (_source is not null && store.Meta.DatasetFingerprint != TrainingData.Fingerprint)
            {
                problems.Add($"{Path.Combine(folder, StoreFiles.Meta)}: field 'datasetFingerprint' is {store.Meta.DatasetFingerprint[..12]}…, " +
                    $"but the training images source.json names ({_source.Data}, subset '{_source.Subset}') have {TrainingData.Fingerprint[..12]}…");
            }
            var features = new float[store.Dim];
            int found = 0;
            for (long row = store.FirstRow; row < store.FirstRow + store.Rows; row++)
            {
                cancel.ThrowIfCancellationRequested();
                store.ReadRow(row, features);
                int bad = Array.FindIndex(features, v => !float.IsFinite(v));
                if (bad >= 0 && found++ < MaxProblems)
                {
                    problems.Add($"{Path.Combine(folder, StoreFiles.Features)}: row {row}, feature {bad} is {features[bad]}");
                }
                checkedRows++;
                long done = row - store.FirstRow + 1;
                if (done % 1024 == 0 || done == store.Rows)
                {
                    progress?.Report(new MethodProgress($"verify {folder}", done, store.Rows));
                }
            }
            if (found > MaxProblems)
            {
                problems.Add($"{Path.Combine(folder, StoreFiles.Features)}: {found - MaxProblems} more rows with non-finite features");
            }
        }
        return new StoreCheck(folders, checkedRows, problems);
    }

    /// <summary>Closes the store and the model's sessions.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _scorer.Dispose();
        }
    }
}
