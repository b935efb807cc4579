using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Imaging;
using OnnxAttribution.Store;

namespace OnnxAttribution;

/// <summary>What an <see cref="Attributor"/> does beside ranking: the training images, the grid picture, the store check.</summary>
public sealed partial class Attributor
{
    /// <summary>
    /// The training images of the store's rows (row i is image i), loaded on first use from where the store's
    /// source.json says they came from.
    /// </summary>
    /// <exception cref="UserInputException">The store has no source.json, or its dataset can no longer be loaded.</exception>
    public ImageDataset TrainingData => _trainingData ??= (_source
        ?? throw new UserInputException($"{StoreDirectory} has no {StoreFiles.Source}: the training images of its rows are unknown")).LoadData();

    /// <summary>
    /// Writes a grid PNG: one row per query, the query first, then its ranked training images captioned "#row score" (at
    /// most <see cref="MaxGridColumns"/>; blank tiles when the store has no source.json to find the images).
    /// </summary>
    /// <param name="path">The PNG file written.</param>
    /// <param name="queries">The queries, in the order of <paramref name="rankings"/>.</param>
    /// <param name="rankings">Their rankings (all of the same length, as
    /// <see cref="Attribute(IReadOnlyList{AttributionQuery}, int, IProgress{MethodProgress}, CancellationToken)"/> returns them).</param>
    /// <param name="scale">Integer upscaling of each tile, so captions fit under small images.</param>
    /// <returns>The grid's size, and a note when captions were left out (no usable font).</returns>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException">The counts of queries and rankings differ, or there are none.</exception>
    /// <exception cref="UserInputException">The training images source.json names cannot be loaded (see <see cref="TrainingData"/>).</exception>
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
        int columns = 1 + Math.Min(MaxGridColumns, rankings.Max(r => r.Top.Count));
        // A store without source.json: its rows' images are unknown, their tiles stay blank (the captions still rank them).
        var data = _source is null ? null : TrainingData;
        var tiles = new float[checked(queries.Count * columns * d)];
        var captions = new string?[queries.Count * columns];
        for (int q = 0; q < queries.Count; q++)
        {
            queries[q].Image.CopyTo(tiles.AsSpan(q * columns * d, d));
            captions[q * columns] = $"query {queries[q].Label}";
            foreach (var row in rankings[q].Top.Take(columns - 1))
            {
                int tile = q * columns + row.Rank;
                data?.Image(checked((int)row.Index)).CopyTo(tiles.AsSpan(tile * d, d));
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
}
