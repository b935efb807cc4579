namespace OnnxAttribution.Cluster;

/// <summary>Well-known grain keys of the attribution cluster.</summary>
public static class ClusterNames
{
    /// <summary>The key of the featurize coordinator (one featurization at a time per cluster).</summary>
    public const string Coordinator = "featurize";
}
