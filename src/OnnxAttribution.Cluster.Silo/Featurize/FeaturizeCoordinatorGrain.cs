using Microsoft.Extensions.Logging;
using OnnxAttribution.Cluster.Featurize;
using OnnxAttribution.Store;

namespace OnnxAttribution.Cluster.Silo.Featurize;

/// <summary>
/// The coordinator: items in memory, leases renewed by heartbeats, the shard folders as the durable truth. An item whose
/// worker's silo the membership table declares dead, or whose worker sent no heartbeat within the job's lease timeout, goes
/// back to pending; the next worker continues it from its done bitmap, so no row is lost or written twice.
/// </summary>
internal sealed class FeaturizeCoordinatorGrain(IClusterMembershipService membership, ILogger<FeaturizeCoordinatorGrain> log)
    : Grain, IFeaturizeCoordinatorGrain
{
    /// <summary>Failures of one item (other than a locked folder) before the job stops.</summary>
    public const int MaxFailures = 3;

    private sealed class Item
    {
        public ItemState State;
        public string? Worker;
        public SiloAddress? Silo;
        public DateTime Heartbeat;
        public long RowsDone;
        public long Rows;
        public long FirstRow;
        public int Leases;
        public int Failures;
        public string? LastError;
    }

    private FeaturizeJob? _job;
    private Item[] _items = [];
    private int _reassigned;
    private string? _failure;

    public Task<FeaturizeProgress> SubmitAsync(FeaturizeJob job)
    {
        ArgumentNullException.ThrowIfNull(job);
        if (_job is not null && _job != job)
        {
            if (_failure is null && _items.Any(i => i.State != ItemState.Done))
            {
                throw new InvalidOperationException($"another featurization is running (work folder {_job.WorkDirectory}, {_job.Items} items); " +
                    "wait for it to finish or restart the cluster");
            }
            _job = null;
        }
        if (_job is null)
        {
            Start(job);
        }
        return GetProgressAsync();
    }

    /// <summary>Takes <paramref name="job"/> on, counting the items its folders already hold complete as done.</summary>
    private void Start(FeaturizeJob job)
    {
        _job = job;
        _failure = null;
        _reassigned = 0;
        _items = new Item[job.Items];
        for (int i = 0; i < job.Items; i++)
        {
            var shard = job.Shard(i);
            long first = shard.FirstRow(job.Rows), rows = shard.RowCount(job.Rows);
            string dir = job.ItemDirectory(i);
            var item = new Item { State = ItemState.Pending, FirstRow = first, Rows = rows };
            if (ShardFolder.Incomplete(dir) is null)
            {
                item.State = ItemState.Done;
                item.RowsDone = rows;
            }
            else if (File.Exists(Path.Combine(dir, StoreFiles.Meta)))
            {
                // Started before this activation (the coordinator's silo died): a worker may still be running it. Presume so
                // for one lease timeout; its heartbeat claims it (RenewAsync), or the lease runs out and the item is pending.
                item.State = ItemState.Running;
                item.Heartbeat = DateTime.UtcNow;
            }
            _items[i] = item;
        }
        log.LogInformation("featurize job in {Work}: {Items} items, {Done} already done", job.WorkDirectory, job.Items, _items.Count(i => i.State == ItemState.Done));
    }

    public Task<FeaturizeProgress> GetProgressAsync()
    {
        ExpireLeases();
        return Task.FromResult(new FeaturizeProgress
        {
            Items = _items.Select((it, i) => new ItemProgress
            {
                Item = i,
                State = it.State,
                Worker = it.Worker,
                RowsDone = it.RowsDone,
                Rows = it.Rows,
                Leases = it.Leases,
                LastError = it.LastError,
            }).ToArray(),
            Failure = _failure,
            Reassigned = _reassigned,
        });
    }

    public Task<WorkLease?> LeaseAsync(string worker, SiloAddress silo)
    {
        ExpireLeases();
        if (_job is null || _failure is not null)
        {
            return Task.FromResult<WorkLease?>(null);
        }
        int next = Array.FindIndex(_items, i => i.State == ItemState.Pending);
        if (next < 0)
        {
            return Task.FromResult<WorkLease?>(null);
        }
        var item = _items[next];
        Take(item, worker, silo);
        return Task.FromResult<WorkLease?>(new WorkLease(_job, next));
    }

    private void Take(Item item, string worker, SiloAddress? silo)
    {
        if (item.Leases > 0)
        {
            _reassigned++;
        }
        item.State = ItemState.Running;
        item.Worker = worker;
        item.Silo = silo;
        item.Heartbeat = DateTime.UtcNow;
        item.Leases++;
    }

    public Task<bool> RenewAsync(int item, string worker, long rowsDone)
    {
        if (Find(item) is not { } it || it.State != ItemState.Running || (it.Worker is not null && it.Worker != worker))
        {
            return Task.FromResult(false);
        }
        if (it.Worker is null)
        {
            // A new activation of the coordinator (its silo died) presumed the item running: this worker holds it.
            it.Worker = worker;
            it.Leases++;
        }
        it.Heartbeat = DateTime.UtcNow;
        it.RowsDone = rowsDone;
        return Task.FromResult(true);
    }

    public Task CompleteAsync(int item, string worker)
    {
        if (Find(item) is { } it && it.State != ItemState.Done)
        {
            string? why = ShardFolder.Incomplete(_job!.ItemDirectory(item));
            if (why is null)
            {
                it.State = ItemState.Done;
                it.RowsDone = it.Rows;
                it.Worker = worker;
            }
            else
            {
                Fail(it, item, worker, $"{worker} reported item {item} done, but {why}", counts: true);
            }
        }
        return Task.CompletedTask;
    }

    public Task ReleaseAsync(int item, string worker)
    {
        if (Find(item) is { State: ItemState.Running } it && it.Worker == worker)
        {
            it.State = ItemState.Pending;
            log.LogInformation("item {Item} handed back by {Worker} at {Rows}/{Total} rows", item, worker, it.RowsDone, it.Rows);
        }
        return Task.CompletedTask;
    }

    public Task FailAsync(int item, string worker, string error, bool counts)
    {
        if (Find(item) is { } it && it.State != ItemState.Done && (it.Worker == worker || it.State == ItemState.Pending))
        {
            Fail(it, item, worker, error, counts);
        }
        return Task.CompletedTask;
    }

    private void Fail(Item it, int item, string worker, string error, bool counts)
    {
        it.State = ItemState.Pending;
        it.LastError = error;
        log.LogWarning("item {Item} failed on {Worker}: {Error}", item, worker, error);
        if (counts && ++it.Failures >= MaxFailures)
        {
            _failure = $"item {item} (rows {it.FirstRow}…{it.FirstRow + it.Rows - 1}, folder {_job!.ItemDirectory(item)}) failed {it.Failures} times; " +
                $"last on {worker}: {error}";
        }
    }

    private Item? Find(int item) => _job is not null && item >= 0 && item < _items.Length ? _items[item] : null;

    /// <summary>Running items whose silo is dead or whose worker went silent go back to pending.</summary>
    private void ExpireLeases()
    {
        if (_job is null)
        {
            return;
        }
        var now = DateTime.UtcNow;
        var snapshot = membership.CurrentSnapshot;
        for (int i = 0; i < _items.Length; i++)
        {
            var it = _items[i];
            if (it.State != ItemState.Running)
            {
                continue;
            }
            bool dead = it.Silo is not null && snapshot.GetSiloStatus(it.Silo) == SiloStatus.Dead;
            if (dead || now - it.Heartbeat > _job.LeaseTimeout)
            {
                log.LogWarning("item {Item}: worker {Worker} {Why}; the item goes back to pending at {Rows}/{Total} rows", i, it.Worker,
                    dead ? "is on a dead silo" : $"sent no heartbeat for {(now - it.Heartbeat).TotalSeconds:F0} s", it.RowsDone, it.Rows);
                it.State = ItemState.Pending;
            }
        }
    }
}
