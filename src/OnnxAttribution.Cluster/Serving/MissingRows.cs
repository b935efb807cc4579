namespace OnnxAttribution.Cluster.Serving;

/// <summary>Rows no replica answered for: the ranking leaves them out.</summary>
/// <param name="Shard">The shard index.</param>
/// <param name="FirstRow">Its first row.</param>
/// <param name="Rows">Its rows.</param>
/// <param name="Reason">Why: no replica registered, or each replica's error.</param>
public sealed record MissingRows(int Shard, long FirstRow, long Rows, string Reason);
