namespace OnnxAttribution.Cluster.Serving;

/// <summary>The replicas of a served store (key: the store's name), as the serving silos register them every few seconds.</summary>
public interface IShardRegistryGrain : IGrainWithStringKey
{
    /// <summary>Adds or refreshes a replica.</summary>
    Task RegisterAsync(ShardInfo replica);

    /// <summary>The registered replicas whose silo the membership table does not declare dead, by shard then registration order.</summary>
    Task<IReadOnlyList<ShardInfo>> GetAsync();
}
