namespace OnnxAttribution.Cluster.Serving;

/// <summary>A shard's best rows for each query of a batch: global row indices and their scores, best first.</summary>
/// <param name="Indices">Per query, the rows (ties: lower row first).</param>
/// <param name="Scores">Per query, their scores.</param>
[GenerateSerializer]
public sealed record ShardTopK([property: Id(0)] long[][] Indices, [property: Id(1)] float[][] Scores);
