using OnnxAttribution.Cluster.Serving;
using OnnxAttribution.Store;
using Orleans.Placement;

namespace OnnxAttribution.Cluster.Silo.Serving;

/// <summary>Maps its shard folder on activation (started from its own silo, so placed there) and scans it per query batch.</summary>
[PreferLocalPlacement]
internal sealed class ShardScanGrain(AttributionSiloOptions options, ILocalSiloDetails silo) : Grain, IShardScanGrain
{
    private FeatureStore? _store;
    private ShardInfo? _info;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        string key = this.GetPrimaryKeyString();
        var parts = key.Split('|');
        if (parts.Length != 3 || !int.TryParse(parts[1], out int shard))
        {
            throw new ArgumentException($"shard grain key '{key}': expected store|shard|silo");
        }
        if (parts[2] != silo.Name)
        {
            throw new ShardUnavailableException($"shard {shard} of store '{parts[0]}' is served by silo {parts[2]}, not by {silo.Name} (that silo is gone)");
        }
        foreach (var served in (options.Serves?.Invoke(silo.Name) ?? []).Where(s => s.Store == parts[0]))
        {
            var meta = StoreMeta.Load(Path.Combine(served.Directory, StoreFiles.Meta));
            if (meta.Shard.Index == shard)
            {
                _store = FeatureStore.Open(served.Directory);
                _info = Describe(served.Store, _store, key);
                // Keep the mapping while the silo lives: idle collection would only make the next query map it again.
                DelayDeactivation(TimeSpan.FromDays(3650));
                return Task.CompletedTask;
            }
        }
        throw new ShardUnavailableException($"silo {silo.Name} serves no shard {shard} of store '{parts[0]}'");
    }

    private ShardInfo Describe(string store, FeatureStore shard, string key) => new()
    {
        Store = store,
        Shard = shard.Meta.Shard.Index,
        ShardCount = shard.Meta.Shard.Count,
        FirstRow = shard.FirstRow,
        Rows = shard.Rows,
        TotalRows = shard.Meta.Rows,
        SiloName = silo.Name,
        Silo = silo.SiloAddress,
        GrainKey = key,
        Settings = ShardInfo.SettingsOf(shard.Meta),
    };

    public Task<ShardInfo> DescribeAsync() => Task.FromResult(_info!);

    public Task<ShardTopK> TopKAsync(float[] preconditioned, int queryCount, int top)
    {
        var results = _store!.TopK(preconditioned, queryCount, top);
        return Task.FromResult(new ShardTopK(results.Select(r => r.Indices).ToArray(), results.Select(r => r.Scores).ToArray()));
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _store?.Dispose();
        _store = null;
        return Task.CompletedTask;
    }
}
