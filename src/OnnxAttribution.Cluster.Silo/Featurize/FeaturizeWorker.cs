using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OnnxAttribution.Primitives;
using OnnxAttribution.Cluster.Featurize;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Store;

namespace OnnxAttribution.Cluster.Silo.Featurize;

/// <summary>
/// A silo's featurize worker: takes one item at a time from the coordinator, featurizes its shard with this silo's own
/// ONNX Runtime session (kept for the next item of the same job), sends heartbeats with its rows done, and reports the item
/// complete, failed, or handed back when the silo stops. A killed silo sends nothing: its lease runs out instead.
/// </summary>
internal sealed class FeaturizeWorker(IGrainFactory grains, ILocalSiloDetails silo, AttributionSiloOptions options, ILogger<FeaturizeWorker> log)
    : BackgroundService
{
    private FeaturizeJob? _openJob;
    private GradientModel? _model;
    private ImageDataset? _data;

    private string Name => $"{silo.Name}@{silo.SiloAddress}";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var coordinator = grains.GetGrain<IFeaturizeCoordinatorGrain>(ClusterNames.Coordinator);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                WorkLease? lease = null;
                try
                {
                    lease = await coordinator.LeaseAsync(Name, silo.SiloAddress).WaitAsync(stoppingToken);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    log.LogWarning("{Worker}: the coordinator did not answer: {Error}", Name, e.Message);
                }
                if (lease is null)
                {
                    await Task.Delay(options.PollInterval, stoppingToken);
                    continue;
                }
                if (!await RunAsync(coordinator, lease, stoppingToken))
                {
                    // A failed item goes back to pending: give the other workers (or a lock's holder) a moment first.
                    await Task.Delay(options.PollInterval, stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            _model?.Dispose();
        }
    }

    /// <summary>Runs one item to its end, its loss of lease, a failure or the silo's stop; true when it completed.</summary>
    private async Task<bool> RunAsync(IFeaturizeCoordinatorGrain coordinator, WorkLease lease, CancellationToken stoppingToken)
    {
        using var item = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        long rowsDone = 0;
        var heartbeat = HeartbeatAsync(coordinator, lease, () => Interlocked.Read(ref rowsDone), item);
        try
        {
            // Its own thread: the item runs for minutes and must not hold a pool thread the heartbeats and grain calls need.
            await Task.Factory.StartNew(() => Featurize(lease, p => Interlocked.Exchange(ref rowsDone, p), item.Token), item.Token,
                TaskCreationOptions.LongRunning, TaskScheduler.Default);
            await coordinator.CompleteAsync(lease.Item, Name);
            log.LogInformation("{Worker}: item {Item} done", Name, lease.Item);
            return true;
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            log.LogInformation("{Worker}: stopping; item {Item} handed back at {Rows} rows", Name, lease.Item, Interlocked.Read(ref rowsDone));
            await Quietly(coordinator.ReleaseAsync(lease.Item, Name));
        }
        catch (OperationCanceledException)
        {
            log.LogWarning("{Worker}: lost the lease of item {Item}; another worker continues it", Name, lease.Item);
        }
        catch (Exception e)
        {
            log.LogWarning("{Worker}: item {Item} failed: {Error}", Name, lease.Item, e.Message);
            await Quietly(coordinator.FailAsync(lease.Item, Name, e.Message, counts: e is not StoreLockedException));
        }
        finally
        {
            await item.CancelAsync();
            await Quietly(heartbeat);
        }
        return false;
    }

    /// <summary>Renews the lease every tenth of the lease timeout; cancels the item when the coordinator says it was lost.</summary>
    private async Task HeartbeatAsync(IFeaturizeCoordinatorGrain coordinator, WorkLease lease, Func<long> rowsDone, CancellationTokenSource item)
    {
        var interval = lease.Job.LeaseTimeout / 10;
        while (!item.IsCancellationRequested)
        {
            await Task.Delay(interval, item.Token);
            bool kept;
            try
            {
                kept = await coordinator.RenewAsync(lease.Item, Name, rowsDone());
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The coordinator may be moving to another silo: keep working, the next heartbeat finds it.
                log.LogWarning("{Worker}: heartbeat for item {Item} failed: {Error}", Name, lease.Item, e.Message);
                continue;
            }
            if (!kept)
            {
                await item.CancelAsync();
            }
        }
    }

    private void Featurize(WorkLease lease, Action<long> rowsDone, CancellationToken cancel)
    {
        var job = lease.Job;
        if (_openJob != job)
        {
            _model?.Dispose();
            _model = null;
            var runtime = Runtime.ModelDirectory.Open(job.ModelDirectory);
            _data = new DatasetLocator().Load(job.Data, job.Subset, runtime.Metadata.ImageSize);
            var first = job.Options(lease.Item, _data, options.Session);
            _model = new GradientModel(job.ModelDirectory, first.Plan, first.Projection, first.StreamSession);
            _openJob = job;
        }
        var o = job.Options(lease.Item, _data!, options.Session);
        using var store = TrakEngine.Featurize(o, _model!, new SyncProgress<(long Done, long Total)>(p => rowsDone(p.Done)), cancel);
    }

    private static async Task Quietly(Task task)
    {
        try
        {
            await task;
        }
        catch (Exception)
        {
            // Best effort: the silo is stopping or the coordinator moving; the lease timeout covers a lost message.
        }
    }
}
