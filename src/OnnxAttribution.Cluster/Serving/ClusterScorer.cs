using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Cluster.Serving;

/// <summary>
/// A store served by the cluster as an <see cref="IAttributionScorer"/> (for the HTTP server's queues, limits and timings):
/// <see cref="TopK"/> is <see cref="ClusterQuery.AttributeAsync"/>, and <see cref="LastAnswer"/> says which rows it covered.
/// </summary>
/// <remarks>Not thread-safe, like the other scorers: one caller at a time (the server gives each lane its own).</remarks>
public sealed class ClusterScorer : IAttributionScorer
{
    private readonly ClusterQuery _query;

    private ClusterScorer(ClusterQuery query) => _query = query;

    /// <inheritdoc/>
    public string Method => _query.Method;

    /// <inheritdoc/>
    public long Rows => _query.Rows;

    /// <summary>The last <see cref="TopK"/>'s answer: the replicas that answered and the rows no replica did.</summary>
    public ClusterAnswer? LastAnswer { get; private set; }

    /// <summary>Opens the head of <paramref name="store"/> (see <see cref="ClusterQuery.Open"/>: its small files, no features.npy).</summary>
    /// <exception cref="AttributionException">A file of the head is missing or damaged, or the model is not the store's.</exception>
    public static ClusterScorer Open(IGrainFactory grains, string store, string modelDirectory, string headDirectory, SessionSettings? session = null) =>
        new(ClusterQuery.Open(grains, store, modelDirectory, headDirectory, session));

    /// <summary>
    /// The top rows of each query over every shard that answers; the shards that do not are in <see cref="LastAnswer"/>'s
    /// <see cref="ClusterAnswer.Missing"/> (a partial answer is the caller's to report, never to hide).
    /// </summary>
    /// <exception cref="ClusterUnavailableException">No shard answered: there is no ranking at all.</exception>
    public TopKResult[] TopK(IReadOnlyList<AttributionQuery> queries, int top, CancellationToken cancel = default)
    {
        LastAnswer = null;
        var answer = _query.AttributeAsync(queries, top, cancel).GetAwaiter().GetResult();
        if (answer.Answered.Count == 0)
        {
            throw new ClusterUnavailableException(_query.Store, answer.Missing);
        }
        LastAnswer = answer;
        return answer.Rankings.Select(r => new TopKResult(r.Top.Select(x => x.Index).ToArray(), r.Top.Select(x => x.Score).ToArray())).ToArray();
    }

    /// <summary>Not offered: a sharded store's every score would be N floats per query gathered from every silo; ask for <see cref="TopK"/>.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public float[] Scores(IReadOnlyList<AttributionQuery> queries, CancellationToken cancel = default) =>
        throw new NotSupportedException($"store '{_query.Store}' is served by the cluster: it answers top rows (TopK), not every row's score");

    /// <inheritdoc/>
    public void Dispose() => _query.Dispose();
}
