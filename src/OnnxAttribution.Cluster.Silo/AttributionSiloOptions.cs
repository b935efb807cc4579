using OnnxAttribution.Runtime;

namespace OnnxAttribution.Cluster.Silo;

/// <summary>What a silo of the attribution cluster does: run featurization items, serve shards, or both.</summary>
public sealed record AttributionSiloOptions
{
    /// <summary>Run a featurize worker (one item at a time, with its own ONNX Runtime session).</summary>
    public bool Featurize { get; init; } = true;

    /// <summary>How often an idle worker asks the coordinator for an item.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>ONNX Runtime settings of the worker's session.</summary>
    public SessionSettings Session { get; init; } = SessionSettings.Default;

    /// <summary>
    /// The shard folders a silo serves, by silo name (in a deployment one silo, one list; a test cluster's silos share a process
    /// and are told apart by name). Null or an empty list: the silo serves nothing.
    /// </summary>
    public Func<string, IReadOnlyList<ServedShard>>? Serves { get; init; }

    /// <summary>How often a serving silo registers its shards again (so a restarted registry learns them).</summary>
    public TimeSpan RegisterInterval { get; init; } = TimeSpan.FromSeconds(2);
}
