namespace OnnxAttribution.Cluster.Featurize;

/// <summary>A cluster featurization across its silos, as the coordinator sees it.</summary>
[GenerateSerializer]
public sealed record FeaturizeProgress
{
    /// <summary>The items, by index.</summary>
    [Id(0)] public IReadOnlyList<ItemProgress> Items { get; init; } = [];

    /// <summary>Why the job stopped (an item failed too often), or null.</summary>
    [Id(1)] public string? Failure { get; init; }

    /// <summary>Items that were taken back from a worker (stopped, lost, or too slow to send heartbeats) and leased again.</summary>
    [Id(2)] public int Reassigned { get; init; }

    /// <summary>Rows done over all items.</summary>
    public long RowsDone => Items.Sum(i => i.RowsDone);

    /// <summary>Rows of the job.</summary>
    public long Rows => Items.Sum(i => i.Rows);

    /// <summary>Items whose shard is complete.</summary>
    public int ItemsDone => Items.Count(i => i.State == ItemState.Done);

    /// <summary>True when every shard is complete.</summary>
    public bool Complete => Items.Count > 0 && ItemsDone == Items.Count;

    /// <summary>One line: rows and items done, and which worker runs which item.</summary>
    public string Describe()
    {
        var running = Items.Where(i => i.State == ItemState.Running).Select(i => $"{i.Worker}: item {i.Item} ({i.RowsDone}/{i.Rows})");
        return $"rows {RowsDone}/{Rows}, items {ItemsDone}/{Items.Count} done, {Reassigned} reassigned" +
            (Items.Any(i => i.State == ItemState.Running) ? "; " + string.Join(", ", running) : "");
    }
}
