namespace OnnxAttribution.Cluster.Featurize;

/// <summary>An item leased to a worker: run shard <see cref="Item"/> of <see cref="Job"/>, sending heartbeats.</summary>
/// <param name="Job">The job.</param>
/// <param name="Item">The item (shard index).</param>
[GenerateSerializer]
public sealed record WorkLease([property: Id(0)] FeaturizeJob Job, [property: Id(1)] int Item);
