using OnnxAttribution.Primitives;

namespace OnnxAttribution.Cluster.Serving;

/// <summary>No shard of a store served by the cluster answered: there is no ranking to give, not even a partial one.</summary>
public sealed class ClusterUnavailableException : AttributionException
{
    /// <summary>The error for <paramref name="store"/>, naming every shard and why it did not answer.</summary>
    public ClusterUnavailableException(string store, IReadOnlyList<MissingRows> missing)
        : base($"store '{store}': no shard answered ({string.Join("; ", missing.Select(m => $"shard {m.Shard}, rows {m.FirstRow}…{m.FirstRow + m.Rows - 1}: {m.Reason}"))}); " +
            $"start the silos that serve it (onnx-attribution-cluster silo --serve {store}=FOLDER) and retry")
    {
        Missing = missing;
    }

    /// <summary>Every shard, with why it did not answer.</summary>
    public IReadOnlyList<MissingRows> Missing { get; }
}
