using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Cluster.Featurize;

/// <summary>
/// The client's side of a cluster featurization: submits the job, follows it until every item's shard is complete, and
/// merges the shards into one store, byte-identical to a single-machine <c>featurize</c> with the same settings.
/// </summary>
public static class ClusterFeaturizer
{
    /// <summary>How long the coordinator may stay unreachable (its silo died, it is being activated elsewhere) before the client gives up.</summary>
    public static readonly TimeSpan CoordinatorPatience = TimeSpan.FromMinutes(2);

    /// <summary>Checks <paramref name="job"/> and fills in its row count from the training data.</summary>
    /// <exception cref="UserInputException">A method other than trak/d-trak, or more items than rows.</exception>
    /// <exception cref="ModelFileException">The model folder is missing or invalid.</exception>
    public static FeaturizeJob Prepare(FeaturizeJob job)
    {
        ArgumentNullException.ThrowIfNull(job);
        job.FeatureMethod();
        var model = ModelDirectory.Open(job.ModelDirectory);
        var data = new DatasetLocator().Load(job.Data, job.Subset, model.Metadata.ImageSize);
        if (job.Items < 1 || job.Items > data.Count)
        {
            throw new UserInputException($"--items {job.Items}: expected 1 to {data.Count} (the rows of '{job.Data}', subset '{job.Subset}')");
        }
        return job with { Rows = data.Count };
    }

    /// <summary>
    /// Runs <paramref name="job"/> on the cluster's workers (continuing whatever its work folder already holds), reporting
    /// progress every <paramref name="pollInterval"/>, then merges the shards into <paramref name="outDirectory"/>.
    /// </summary>
    /// <returns>The coordinator's last progress (items, who ran them, how many were reassigned).</returns>
    /// <exception cref="AttributionException">An item failed three times (the coordinator's limit, <see cref="IFeaturizeCoordinatorGrain.FailAsync"/>; the message names it).</exception>
    /// <exception cref="InvalidOperationException">Another featurization is running on the cluster.</exception>
    public static async Task<FeaturizeProgress> RunAsync(IGrainFactory grains, FeaturizeJob job, string outDirectory,
        IProgress<FeaturizeProgress>? progress = null, TimeSpan? pollInterval = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(grains);
        ArgumentNullException.ThrowIfNull(outDirectory);
        job = Prepare(job);
        var coordinator = grains.GetGrain<IFeaturizeCoordinatorGrain>(ClusterNames.Coordinator);
        var poll = pollInterval ?? TimeSpan.FromSeconds(1);
        var unreachableSince = (DateTime?)null;
        FeaturizeProgress state;
        while (true)
        {
            try
            {
                // Submitting again is how a new activation of the coordinator learns the job.
                state = await coordinator.SubmitAsync(job).WaitAsync(cancel);
                unreachableSince = null;
            }
            catch (Exception e) when (e is not OperationCanceledException and not InvalidOperationException)
            {
                unreachableSince ??= DateTime.UtcNow;
                if (DateTime.UtcNow - unreachableSince > CoordinatorPatience)
                {
                    throw new AttributionException($"the featurize coordinator has not answered for {CoordinatorPatience.TotalSeconds:F0} s: {e.Message}", e);
                }
                await Task.Delay(poll, cancel);
                continue;
            }
            progress?.Report(state);
            if (state.Failure is not null)
            {
                throw new AttributionException($"cluster featurization in {job.WorkDirectory} stopped: {state.Failure}");
            }
            if (state.Complete)
            {
                break;
            }
            await Task.Delay(poll, cancel);
        }
        Merge(job, outDirectory);
        return state;
    }

    /// <summary>Merges the complete item folders of <paramref name="job"/> into <paramref name="outDirectory"/> (not existing or empty), with its source.json.</summary>
    /// <exception cref="StoreFormatException">An item folder is incomplete or damaged, or <paramref name="outDirectory"/> is not empty.</exception>
    public static void Merge(FeaturizeJob job, string outDirectory)
    {
        ArgumentNullException.ThrowIfNull(job);
        var shards = Enumerable.Range(0, job.Items).Select(job.ItemDirectory).ToList();
        using (FeatureStoreMerge.Merge(shards, outDirectory))
        {
        }
        job.Source(ModelDirectory.Open(job.ModelDirectory).Metadata.ImageSize).Save(outDirectory);
    }
}
