using OnnxAttribution.Cluster.Serving;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Core.Store;

namespace OnnxAttribution.Server;

/// <summary>What a report request gets back beside its answer: its queries (sampled ones included) and every row's score of each.</summary>
internal sealed class FullScores
{
    /// <summary>The request's queries, as scored; null until the worker has scored them.</summary>
    public IReadOnlyList<AttributionQuery>? Queries { get; private set; }

    /// <summary>Query q's score of row i at [q·N + i]; null until the worker has scored them.</summary>
    public float[]? Scores { get; private set; }

    /// <summary>Takes the request's part of a batch's scores: its queries start at <paramref name="first"/> of the batch.</summary>
    public void Receive(IReadOnlyList<AttributionQuery> queries, float[] batchScores, int first, long rows)
    {
        int n = checked((int)rows);
        Queries = queries;
        Scores = batchScores.AsSpan(checked(first * n), checked(queries.Count * n)).ToArray();
    }
}

/// <summary>The store's side of reports and of the auditor's page: its folder, its training images, every row's score.</summary>
internal sealed partial class ServedStore
{
    private readonly Lock _dataGate = new();
    private ImageDataset? _trainingData;
    private bool _dataLoaded;

    /// <summary>The store folder (for the report's provenance; never shown to clients).</summary>
    public string StoreDirectory { get; private init; } = "";

    /// <summary>True for a store scored by the cluster's shards: they answer top rows only, not every row's score.</summary>
    public bool IsCluster => _scorer is ClusterScorer;

    /// <summary>
    /// The training images of the store's rows (row i is image i), loaded on first use from where its source.json says
    /// they came from; null when the store has no source.json. A failed load is not remembered: the next call tries again.
    /// </summary>
    /// <exception cref="Core.UserInputException">The dataset source.json names can no longer be loaded.</exception>
    public ImageDataset? TrainingData
    {
        get
        {
            lock (_dataGate)
            {
                if (!_dataLoaded)
                {
                    _trainingData = StoreSource.TryLoad(StoreDirectory)?.LoadData();
                    _dataLoaded = true;
                }
                return _trainingData;
            }
        }
    }

    /// <summary>Each query's best rows from its full scores, as the scorer's own top-k gives them.</summary>
    private static TopKResult[] TopOf(float[] scores, int queries, long rows, int top)
    {
        int n = checked((int)rows);
        return Enumerable.Range(0, queries).Select(q => TopKSelection.Select(scores.AsSpan(q * n, n), top)).ToArray();
    }
}
