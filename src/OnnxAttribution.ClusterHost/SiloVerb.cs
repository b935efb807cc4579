using CommandLine;

namespace OnnxAttribution.ClusterHost;

[Verb("silo", HelpText = "Run a silo until stopped (Ctrl+C, SIGTERM): a featurize worker, and a server of the shard folders given with --serve.")]
internal sealed class SiloVerb : ClusterVerb
{
    [Option("name", Required = true, HelpText = "The silo's name (unique in the cluster; shard grains are placed by it).")]
    public string Name { get; set; } = "";

    [Option("silo-port", Required = true, HelpText = "Port for silo-to-silo traffic on 127.0.0.1.")]
    public int SiloPort { get; set; }

    [Option("gateway-port", Required = true, HelpText = "Port for clients on 127.0.0.1.")]
    public int GatewayPort { get; set; }

    [Option("serve", Separator = ',', HelpText = "Shard folders to serve, NAME=FOLDER, comma-separated (a shard's meta.json says its rows).")]
    public IEnumerable<string> Serve { get; set; } = [];

    [Option("no-featurize", HelpText = "Do not run a featurize worker on this silo.")]
    public bool NoFeaturize { get; set; }

    [Option("threads", Default = 0, HelpText = "ONNX Runtime intra-op threads of the worker's session (0: its default).")]
    public int Threads { get; set; }
}
