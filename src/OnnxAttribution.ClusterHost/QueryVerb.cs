using CommandLine;

namespace OnnxAttribution.ClusterHost;

[Verb("query", HelpText = "Attribute generated images (seeds) against a store served by the cluster, or (--local) against the merged store on this machine; " +
    "writes one line per ranked row: query, rank, row, score (round-trip exact).")]
internal sealed class QueryVerb : ClusterVerb
{
    [Option("store", Required = true, HelpText = "The served store's name (as the silos' --serve gives it).")]
    public string Store { get; set; } = "";

    [Option("model", Required = true)]
    public string Model { get; set; } = "";

    [Option("head", Required = true, HelpText = "The merged, finalized store, or a folder with a copy of its meta.json, preconditioner.bin and checksums.json: " +
        "they precondition the queries (--local and --bench also scan its features.npy).")]
    public string Head { get; set; } = "";

    [Option("seed", Default = 0L)]
    public long Seed { get; set; }

    [Option("count", Default = 20)]
    public int Count { get; set; }

    [Option("steps", Default = 50)]
    public int Steps { get; set; }

    [Option("top", Default = 10)]
    public int Top { get; set; }

    [Option("local", HelpText = "Answer on this machine (the library's Attributor on --head), not on the cluster.")]
    public bool Local { get; set; }

    [Option("bench", Default = 0, HelpText = "Also time N rounds of one-query fan-outs against a local scan of --head with the same vector (p50 in ms).")]
    public int Bench { get; set; }

    [Option("out", Required = true, HelpText = "The rankings file.")]
    public string Out { get; set; } = "";
}
