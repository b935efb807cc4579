using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace OnnxAttribution.Cluster.Serving;

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
        var keys = served.Select(s => (s.Store, Key: ShardInfo.KeyOf(s.Store,
            Core.Store.StoreMeta.Load(Path.Combine(s.Directory, Core.Store.StoreFiles.Meta)).Shard.Index, silo.Name))).ToList();
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                foreach (var (store, key) in keys)
                {
                    try
                    {
                        var info = await grains.GetGrain<IShardScanGrain>(key).DescribeAsync().WaitAsync(stoppingToken);
                        await grains.GetGrain<IShardRegistryGrain>(store).RegisterAsync(info).WaitAsync(stoppingToken);
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
