using CommandLine;

namespace OnnxAttribution.ClusterHost;

/// <summary>The options every verb shares: where the membership table is and which cluster to join.</summary>
internal abstract class ClusterVerb
{
    [Option("redis", Required = true, HelpText = "The Redis server holding the membership table, host:port (e.g. 127.0.0.1:6390).")]
    public string Redis { get; set; } = "";

    [Option("cluster-id", Default = Cluster.ClusterClient.DefaultClusterId, HelpText = "The cluster's id (silos and clients of one cluster share it).")]
    public string ClusterId { get; set; } = Cluster.ClusterClient.DefaultClusterId;
}
