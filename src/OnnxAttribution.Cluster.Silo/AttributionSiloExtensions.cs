using Microsoft.Extensions.DependencyInjection;
using OnnxAttribution.Cluster.Silo.Featurize;
using OnnxAttribution.Cluster.Silo.Serving;

namespace OnnxAttribution.Cluster.Silo;

/// <summary>Adds the attribution cluster's services to a silo.</summary>
public static class AttributionSiloExtensions
{
    /// <summary>
    /// Makes the silo a member of the attribution cluster: the featurize coordinator and shard grains live here, and (by
    /// <paramref name="options"/>) a featurize worker runs and shards are served. Clustering (Redis, localhost in tests) is the caller's.
    /// </summary>
    public static ISiloBuilder AddAttributionCluster(this ISiloBuilder silo, AttributionSiloOptions options)
    {
        ArgumentNullException.ThrowIfNull(silo);
        ArgumentNullException.ThrowIfNull(options);
        silo.Services.AddSingleton(options);
        if (options.Featurize)
        {
            silo.Services.AddHostedService<FeaturizeWorker>();
        }
        silo.Services.AddHostedService<ShardServer>();
        return silo;
    }
}
