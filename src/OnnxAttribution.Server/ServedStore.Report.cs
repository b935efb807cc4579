using OnnxAttribution.Cluster.Serving;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;

namespace OnnxAttribution.Server;

/// <summary>
/// What a request gets back beside its answer: its queries as scored (sampled ones included) and, for a report, every
/// row's score of each (<see cref="WantsScores"/>; the auditor's page asks only for a seed's query image).
/// </summary>
internal sealed class FullScores(bool wantsScores = true)
{
    /// <summary>Whether the request needs every row's score (a report), not only its queries (a seed's query image).</summary>
    public bool WantsScores { get; } = wantsScores;

    /// <summary>The request's queries, as scored; null until the worker has scored them.</summary>
    public IReadOnlyList<AttributionQuery>? Queries { get; private set; }

    /// <summary>Query q's score of row i at [q·N + i]; null until the worker has scored them, or when not wanted.</summary>
    public float[]? Scores { get; private set; }

    /// <summary>Takes the request's queries and, when wanted, its part of the reported queries' scores, which start at query <paramref name="first"/>.</summary>
    public void Receive(IReadOnlyList<AttributionQuery> queries, float[]? reportedScores, int first, long rows)
    {
        int n = checked((int)rows);
        Queries = queries;
        Scores = reportedScores?.AsSpan(checked(first * n), checked(queries.Count * n)).ToArray();
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
    public bool IsCluster => _images.Scorer is ClusterScorer;

    /// <summary>
    /// The training images of the store's rows (row i is image i), loaded on first use from where its source.json says
    /// they came from; null when the store has no source.json. A failed load is not remembered: the next call tries again.
    /// </summary>
    /// <exception cref="Primitives.UserInputException">The dataset source.json names can no longer be loaded.</exception>
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

}
