using CommandLine;
using OnnxAttribution.Store;

namespace OnnxAttribution.ClusterHost;

[Verb("featurize", HelpText = "Start (or join and follow) a trak/d-trak featurization on the cluster's workers, then merge the shards into --out. " +
    "Same settings and defaults as the CLI's featurize; the merged store equals its single-machine store byte for byte.")]
internal sealed class FeaturizeClusterVerb : ClusterVerb
{
    [Option("model", Required = true)]
    public string Model { get; set; } = "";

    [Option("data", Default = "embedded")]
    public string Data { get; set; } = "embedded";

    [Option("subset", Default = "all")]
    public string Subset { get; set; } = "all";

    [Option("method", Default = "trak", HelpText = "trak or d-trak.")]
    public string Method { get; set; } = "trak";

    [Option("timesteps", Default = 10)]
    public int Timesteps { get; set; }

    [Option("noise-draws", Default = 1)]
    public int NoiseDraws { get; set; }

    [Option("noise-seed", Default = 0L)]
    public long NoiseSeed { get; set; }

    [Option("dim", Default = 4096)]
    public int Dim { get; set; }

    [Option("projection-seed", Default = 0L)]
    public long ProjectionSeed { get; set; }

    [Option("dtype", Default = StoreDType.Float32)]
    public StoreDType DType { get; set; }

    [Option("batch-size", Default = 16)]
    public int BatchSize { get; set; }

    [Option("items", Required = true, HelpText = "Work items (shards) the rows are split into; a lost silo costs at most its item's undone rows.")]
    public int Items { get; set; }

    [Option("work", Required = true, HelpText = "The shared folder of the item stores (the job's durable progress; rerun to continue).")]
    public string Work { get; set; } = "";

    [Option("lease-seconds", Default = 30, HelpText = "An item whose worker sends no heartbeat this long runs again elsewhere.")]
    public int LeaseSeconds { get; set; }

    [Option("out", Required = true, HelpText = "The merged store folder (not existing or empty).")]
    public string Out { get; set; } = "";
}
