using OnnxAttribution.Cluster.Silo;
using Orleans.TestingHost;

namespace OnnxAttribution.Cluster.Tests;

/// <summary>
/// Configures each silo of a test cluster as an attribution silo with <see cref="Options"/>, set by the fixture before it
/// deploys (the silos of a TestCluster run in this process; a configurator needs a parameterless constructor).
/// </summary>
public sealed class TestSilos : ISiloConfigurator
{
    /// <summary>The options every silo of the next cluster gets.</summary>
    public static AttributionSiloOptions Options { get; set; } = new();

    public void Configure(ISiloBuilder siloBuilder) => siloBuilder.AddAttributionCluster(Options);

    /// <summary>A started cluster of <paramref name="silos"/> silos with <paramref name="options"/>.</summary>
    public static async Task<TestCluster> StartAsync(short silos, AttributionSiloOptions options)
    {
        Options = options;
        // The silos share this process and its thread pool; on a 2-core machine three featurizing silos would starve the pool
        // that carries their heartbeats until it grows (a thread per half second), which a deployment (a process per silo) does not see.
        ThreadPool.GetMinThreads(out int workers, out int io);
        ThreadPool.SetMinThreads(Math.Max(workers, 32), io);
        var builder = new TestClusterBuilder(silos);
        builder.AddSiloBuilderConfigurator<TestSilos>();
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return cluster;
    }
}
