using OnnxAttribution.Cluster.Serving;

namespace OnnxAttribution.Cluster.Silo.Serving;

/// <summary>In memory: a new activation (its silo died) is filled again by the silos' next registrations.</summary>
internal sealed class ShardRegistryGrain(IClusterMembershipService membership) : Grain, IShardRegistryGrain
{
    private readonly List<ShardInfo> _replicas = [];

    public Task RegisterAsync(ShardInfo replica)
    {
        ArgumentNullException.ThrowIfNull(replica);
        int at = _replicas.FindIndex(r => r.GrainKey == replica.GrainKey);
        if (at >= 0)
        {
            _replicas[at] = replica;
        }
        else
        {
            _replicas.Add(replica);
        }
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<ShardInfo>> GetAsync()
    {
        var snapshot = membership.CurrentSnapshot;
        _replicas.RemoveAll(r => snapshot.GetSiloStatus(r.Silo) == SiloStatus.Dead);
        return Task.FromResult<IReadOnlyList<ShardInfo>>(_replicas.OrderBy(r => r.Shard).ToList());
    }
}
