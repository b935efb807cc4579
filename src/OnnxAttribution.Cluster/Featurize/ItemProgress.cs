namespace OnnxAttribution.Cluster.Featurize;

/// <summary>One work item: shard <see cref="Item"/> of the job, its rows and who runs it.</summary>
[GenerateSerializer]
public sealed record ItemProgress
{
    /// <summary>The item (shard index).</summary>
    [Id(0)] public int Item { get; init; }

    /// <summary>Where it stands.</summary>
    [Id(1)] public ItemState State { get; init; }

    /// <summary>The worker running it, or the last one that did; null if none has.</summary>
    [Id(2)] public string? Worker { get; init; }

    /// <summary>Rows of the shard done (from the worker's last heartbeat; all of them once done).</summary>
    [Id(3)] public long RowsDone { get; init; }

    /// <summary>Rows of the shard.</summary>
    [Id(4)] public long Rows { get; init; }

    /// <summary>How many times it was leased; more than 1 means it ran again after a lost worker or a failure.</summary>
    [Id(5)] public int Leases { get; init; }

    /// <summary>The last error a worker reported for it, if any.</summary>
    [Id(6)] public string? LastError { get; init; }
}
