namespace OnnxAttribution.Cluster.Serving;

/// <summary>
/// One replica of one shard, memory-mapped by the silo that serves it (the key names the silo; an activation anywhere else
/// refuses to start, so a lost silo's shard is reported missing instead of silently mapped from somewhere else).
/// </summary>
public interface IShardScanGrain : IGrainWithStringKey
{
    /// <summary>Which rows the replica holds.</summary>
    Task<ShardInfo> DescribeAsync();

    /// <summary>The shard's <paramref name="top"/> best rows for each of <paramref name="queryCount"/> preconditioned queries (queryCount × k, row-major).</summary>
    Task<ShardTopK> TopKAsync(float[] preconditioned, int queryCount, int top);
}
