using OnnxAttribution.Primitives;

namespace OnnxAttribution.Cluster.Serving;

/// <summary>A shard replica cannot answer: its silo is gone, or the silo does not serve it.</summary>
[GenerateSerializer]
public sealed class ShardUnavailableException : AttributionException
{
    /// <summary>Creates the exception with its message.</summary>
    public ShardUnavailableException(string message) : base(message) { }
}
