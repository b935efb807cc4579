namespace OnnxAttribution.Cluster.Serving;

/// <summary>A batch of queries answered by the cluster: the merged rankings and which rows, if any, they leave out.</summary>
/// <param name="Rankings">One per query, best first; over the rows of the shards that answered.</param>
/// <param name="Missing">Shards no replica answered for; empty when the answer covers every row.</param>
/// <param name="Answered">The replica that answered for each shard that did.</param>
public sealed record ClusterAnswer(IReadOnlyList<QueryRanking> Rankings, IReadOnlyList<MissingRows> Missing, IReadOnlyList<ShardInfo> Answered)
{
    /// <summary>True when every row of the store was scored.</summary>
    public bool Complete => Missing.Count == 0;
}
