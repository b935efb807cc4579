namespace OnnxAttribution.Cluster.Featurize;

/// <summary>Where a work item stands.</summary>
public enum ItemState
{
    /// <summary>Not started, or handed back (its worker stopped, lost its lease or failed): the next free worker takes it.</summary>
    Pending,

    /// <summary>Leased to a worker, which sends heartbeats.</summary>
    Running,

    /// <summary>Its shard store is complete on disk.</summary>
    Done,
}
