using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OnnxAttribution.Cluster.Serving;
using OnnxAttribution.Cluster.Silo.Featurize;
using OnnxAttribution.Store;

namespace OnnxAttribution.Cluster.Silo.Serving;

/// <summary>
/// Activates this silo's shard grains from this silo (so local placement puts them here) and registers them with their
/// store's registry, again every <see cref="AttributionSiloOptions.RegisterInterval"/>.
/// </summary>
internal sealed class ShardServer(IGrainFactory grains, ILocalSiloDetails silo, AttributionSiloOptions options, ILogger<ShardServer> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var served = options.Serves?.Invoke(silo.Name) ?? [];
        if (served.Count == 0)
        {
            return;
        }
        var ready = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                foreach (var shard in served)
                {
                    // A folder may not hold its store yet (a featurization still writing it): skip it until it is complete.
                    if (!ready.Contains(shard.Directory) && ShardFolder.Incomplete(shard.Directory) is { } why)
                    {
                        log.LogDebug("{Silo}: not serving {Folder} yet: {Why}", silo.Name, shard.Directory, why);
                        continue;
                    }
                    ready.Add(shard.Directory);
                    var meta = StoreMeta.Load(Path.Combine(shard.Directory, StoreFiles.Meta));
                    string key = ShardInfo.KeyOf(shard.Store, meta.Shard.Index, silo.Name);
                    try
                    {
                        var info = await grains.GetGrain<IShardScanGrain>(key).DescribeAsync().WaitAsync(stoppingToken);
                        await grains.GetGrain<IShardRegistryGrain>(shard.Store).RegisterAsync(info).WaitAsync(stoppingToken);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        log.LogWarning("{Silo}: cannot serve {Key}: {Error}", silo.Name, key, e.Message);
                    }
                }
                await Task.Delay(options.RegisterInterval, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
