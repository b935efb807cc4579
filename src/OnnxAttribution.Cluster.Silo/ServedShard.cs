namespace OnnxAttribution.Cluster.Silo;

/// <summary>A shard store folder a silo serves under a store name; its meta.json says which rows it holds.</summary>
/// <param name="Store">The store's name, shared by all its shards and replicas.</param>
/// <param name="Directory">The shard's folder (a <c>featurize --shard i/n</c> store, or a cluster work item's folder).</param>
public sealed record ServedShard(string Store, string Directory);
