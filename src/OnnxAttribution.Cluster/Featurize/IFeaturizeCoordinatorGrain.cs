namespace OnnxAttribution.Cluster.Featurize;

/// <summary>
/// Hands out a featurization's work items to the silos' workers and takes them back from workers that stop, die or go
/// silent. The item folders on the shared file system are the durable state: a new activation (after the silo holding
/// the coordinator died) rebuilds its view from their done bitmaps when the client submits the job again.
/// </summary>
public interface IFeaturizeCoordinatorGrain : IGrainWithStringKey
{
    /// <summary>Starts <paramref name="job"/>, or continues it if it is the one running (idempotent: the client calls it on every poll).</summary>
    /// <exception cref="InvalidOperationException">Another, unfinished job is running.</exception>
    Task<FeaturizeProgress> SubmitAsync(FeaturizeJob job);

    /// <summary>The job's progress.</summary>
    Task<FeaturizeProgress> GetProgressAsync();

    /// <summary>The next pending item for <paramref name="worker"/> on <paramref name="silo"/>, or null when there is none.</summary>
    Task<WorkLease?> LeaseAsync(string worker, SiloAddress silo);

    /// <summary>A heartbeat: the worker still runs the item and has <paramref name="rowsDone"/> of its rows.</summary>
    /// <returns>False when the lease was lost (the item went to another worker or is done): stop working on it.</returns>
    Task<bool> RenewAsync(int item, string worker, long rowsDone);

    /// <summary>The worker finished the item; the coordinator checks its shard store on disk before counting it done.</summary>
    Task CompleteAsync(int item, string worker);

    /// <summary>The worker hands the item back unfinished (its silo is stopping); another worker continues it.</summary>
    Task ReleaseAsync(int item, string worker);

    /// <summary>The item failed on the worker; it runs again, and after three failures the job stops with <paramref name="error"/>.</summary>
    /// <param name="item">The item.</param>
    /// <param name="worker">The worker.</param>
    /// <param name="error">The error, naming the file or setting.</param>
    /// <param name="counts">False for a failure that says nothing about the item (its folder is still locked by a previous worker).</param>
    Task FailAsync(int item, string worker, string error, bool counts);
}
