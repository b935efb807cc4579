using System.Text.Json.Serialization;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Reporting;

/// <summary>
/// An audit report of one query: the query and how it was made, its top training rows with scores, labels and their
/// standing among all rows (the trust column), and the provenance that makes it reproducible. <see cref="AuditReportHtml"/>
/// renders it as one self-contained HTML file; as JSON it leaves the images out.
/// </summary>
/// <param name="Store">The store's name as the caller shows it (a folder name, or the server's store name).</param>
/// <param name="Query">The query's label.</param>
/// <param name="Origin">How the query was made.</param>
/// <param name="Summary">All N rows' scores of the query: mean, standard deviation, range.</param>
/// <param name="Top">The top rows, best first.</param>
/// <param name="Provenance">Model, store settings and version, tool version, the command.</param>
public sealed record AuditReport(string Store, string Query, QueryOrigin Origin, ScoreSummary Summary, IReadOnlyList<ReportRow> Top, ReportProvenance Provenance)
{
    /// <summary>How to read the report, in plain words (the HTML shows it; the JSON carries it too).</summary>
    public const string ReadingGuide =
        "Each score estimates how much training on that image made this query image more likely under the model: higher means more " +
        "influence, and the rows are ranked by it. A score is evidence, not proof: it comes from a linear approximation of training, so " +
        "read it as a pointer to images worth looking at, never as a finding that an image was copied. The trust column says how far a " +
        "score stands out from the scores of all training rows for the same query: z is the number of standard deviations above their " +
        "mean, and the percentile the share of rows scoring at most as much. A row with z of 3 or more lies far in the tail and stands " +
        "out; a top row with z below 2 is barely distinguishable from the bulk of the training set, so its rank says little. The column " +
        "describes the scores; it does not certify them: on this project's benchmark, queries whose top rows stood out more were not the " +
        "queries whose rankings agreed better with retraining the model.";

    /// <summary>The reading guide, in the JSON form of the report.</summary>
    public string Guide => ReadingGuide;

    /// <summary>z at or above which a row stands out (the reading guide's words).</summary>
    public const double StandsOutZ = 3;

    /// <summary>z below which a top row is barely distinguishable from the bulk.</summary>
    public const double BulkZ = 2;

    /// <summary>The query image, C·H·W values in [-1, 1] (not in JSON).</summary>
    [JsonIgnore]
    public float[] QueryImage { get; init; } = [];

    /// <summary>The training image of each top row, in the order of <see cref="Top"/>; empty when the training images are unknown (not in JSON).</summary>
    [JsonIgnore]
    public IReadOnlyList<float[]> RowImages { get; init; } = [];

    /// <summary>C of the images.</summary>
    public int Channels { get; init; }

    /// <summary>H = W of the images.</summary>
    public int ImageSize { get; init; }

    /// <summary>Other stores' answers to the same query and their overlap with <see cref="Top"/> (report --compare); empty when none.</summary>
    public IReadOnlyList<MethodAgreement> Agreement { get; init; } = [];

    /// <summary>The rows not removed and their scores; (empty, null) when none was removed.</summary>
    private static (long[] RowOf, float[]? Live) LiveRows(ReadOnlySpan<float> scores, IReadOnlyList<long> removedRows)
    {
        if (removedRows.Count == 0)
        {
            return ([], null);
        }
        var removed = removedRows.ToHashSet();
        var rows = new List<long>(scores.Length);
        var live = new List<float>(scores.Length);
        for (int i = 0; i < scores.Length; i++)
        {
            if (!removed.Contains(i))
            {
                rows.Add(i);
                live.Add(scores[i]);
            }
        }
        return ([.. rows], [.. live]);
    }

    /// <summary>
    /// Builds a report from a query's scores over all rows (as <see cref="IAttributionScorer.Scores"/> gives them):
    /// the top rows, their z-scores and percentiles, their labels and images from <paramref name="data"/>.
    /// </summary>
    /// <param name="store">The store's name to show.</param>
    /// <param name="query">The query (its pixels are shown).</param>
    /// <param name="origin">How it was made.</param>
    /// <param name="scores">Its scores, one per row, N in all.</param>
    /// <param name="top">How many rows to list (at most N).</param>
    /// <param name="data">The store's training images (row i is image i), for the pictures and labels; null when unknown.</param>
    /// <param name="provenance">Where the numbers come from.</param>
    /// <param name="imageSize">H = W of the model's images.</param>
    /// <exception cref="ArgumentNullException">An argument but <paramref name="data"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="top"/> is below 1.</exception>
    /// <exception cref="ArgumentException">There are no scores, or the data has fewer images than rows.</exception>
    /// <exception cref="StoreFormatException">A score is NaN or infinite (a damaged store or model).</exception>
    public static AuditReport Create(string store, AttributionQuery query, QueryOrigin origin, ReadOnlySpan<float> scores, int top,
        ImageDataset? data, ReportProvenance provenance, int imageSize)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(origin);
        ArgumentNullException.ThrowIfNull(provenance);
        ArgumentOutOfRangeException.ThrowIfLessThan(top, 1);
        if (data is not null && data.Count < scores.Length)
        {
            throw new ArgumentException($"the training data has {data.Count} images; the store has {scores.Length} rows", nameof(data));
        }
        // Removed rows (their features are zero, so they score 0) count neither among the rows nor in the statistics.
        var (rowOf, live) = LiveRows(scores, provenance.RemovedRows);
        if (live is not null)
        {
            scores = live;
        }
        ScoreSummary summary;
        try
        {
            summary = ScoreSummary.Of(scores);
        }
        catch (ArgumentException e) when (!scores.IsEmpty)
        {
            throw new StoreFormatException($"store '{store}', query '{query.Label}': {e.Message} (run verify on the store)", e);
        }
        var best = TopKSelection.Select(scores, Math.Min(top, scores.Length));
        var rows = new List<ReportRow>(best.Indices.Length);
        var images = new List<float[]>();
        for (int r = 0; r < best.Indices.Length; r++)
        {
            int row = checked((int)(live is null ? best.Indices[r] : rowOf[best.Indices[r]]));
            float score = best.Scores[r];
            rows.Add(new ReportRow(r + 1, row, score, data?.Labels?[row], summary.ZScore(score), ScoreSummary.Percentile(scores, score)));
            if (data is not null)
            {
                images.Add(data.Image(row).ToArray());
            }
        }
        return new AuditReport(store, query.Label, origin, summary, rows, provenance)
        {
            QueryImage = query.Image,
            RowImages = images,
            Channels = imageSize > 0 ? query.Image.Length / (imageSize * imageSize) : 0,
            ImageSize = imageSize,
        };
    }

    /// <summary>
    /// Scores the query with <paramref name="scorer"/>'s full-score path (every row, as <c>attribute</c> ranks them; a
    /// stepwise method's mean over its steps) and builds the report from those scores.
    /// </summary>
    /// <param name="scorer">The store's scorer.</param>
    /// <param name="store">The store's name to show.</param>
    /// <param name="query">The query.</param>
    /// <param name="origin">How it was made.</param>
    /// <param name="top">How many rows to list.</param>
    /// <param name="data">The store's training images, or null.</param>
    /// <param name="provenance">Where the numbers come from.</param>
    /// <param name="imageSize">H = W of the model's images.</param>
    /// <param name="cancel">Stops the scan.</param>
    /// <exception cref="ArgumentNullException">An argument but <paramref name="data"/> is null.</exception>
    /// <exception cref="StoreFormatException">A score is NaN or infinite.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancel"/> was cancelled.</exception>
    public static AuditReport Score(IAttributionScorer scorer, string store, AttributionQuery query, QueryOrigin origin, int top,
        ImageDataset? data, ReportProvenance provenance, int imageSize, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(scorer);
        if (scorer is not IStepwiseScorer stepwise)
        {
            return Create(store, query, origin, scorer.Scores([query], cancel), top, data, provenance, imageSize) with { Condition = query.Condition };
        }
        // Journey-TRAK: the step scores once; the overall scores are their mean, as the scorer's own Scores gives them.
        var steps = stepwise.StepScores(query, cancel);
        int n = checked((int)stepwise.Rows), count = stepwise.Steps.Count;
        var report = Create(store, query, origin, IStepwiseScorer.MeanOverSteps(steps, 1, count, n), top, data, provenance, imageSize);
        var removed = provenance.RemovedRows.ToHashSet();
        var strip = Enumerable.Range(0, count).Select(j =>
        {
            var best = TopKSelection.Select(steps.AsSpan(j * n, n), Math.Min(n, StripRows + removed.Count));
            var keep = Enumerable.Range(0, best.Indices.Length).Where(i => !removed.Contains(best.Indices[i])).Take(StripRows).ToList();
            return new StepRows(stepwise.Steps[j], [.. keep.Select(i => best.Indices[i])], [.. keep.Select(i => best.Scores[i])]);
        }).ToList();
        var images = data is null ? [] : strip.SelectMany(s => s.Rows).Distinct().ToDictionary(r => r, r => data.Image(checked((int)r)).ToArray());
        return report with { Journey = strip, JourneyImages = images, Condition = query.Condition };
    }

    /// <summary>For a conditional model, the condition value the query was attributed under (a class label, or a text model's
    /// packed prompt); null (left out of JSON) otherwise.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public long? Condition { get; init; }

    /// <summary>For a text-conditioned model, the prompt the query was attributed under, in words (the report shows it instead
    /// of <see cref="Condition"/>); null (left out of JSON) otherwise.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Prompt { get; init; }

    /// <summary>Rows the per-step strip shows at each step.</summary>
    public const int StripRows = 5;

    /// <summary>Journey-TRAK stores: each sampling step's best rows, in sampling order (noise first); empty for other methods.</summary>
    public IReadOnlyList<StepRows> Journey { get; init; } = [];

    /// <summary>The training images of the rows in <see cref="Journey"/>, by row (not written to JSON).</summary>
    [JsonIgnore]
    public IReadOnlyDictionary<long, float[]> JourneyImages { get; init; } = new Dictionary<long, float[]>();
}
