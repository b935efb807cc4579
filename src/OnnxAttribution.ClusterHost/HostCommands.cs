using System.Diagnostics;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OnnxAttribution.Cluster;
using OnnxAttribution.Cluster.Featurize;
using OnnxAttribution.Cluster.Serving;
using OnnxAttribution.Primitives;
using OnnxAttribution.Cluster.Silo;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Runtime;
using OnnxAttribution.Runtime.Sampling;
using OnnxAttribution.Store;
using Orleans.Configuration;

namespace OnnxAttribution.ClusterHost;

/// <summary>The verbs: a silo host, and the clients that featurize and query through the cluster.</summary>
internal static class HostCommands
{
    public static async Task<int> RunSiloAsync(SiloVerb o)
    {
        var served = o.Serve.Select(s => s.Split('=', 2) is [var name, var dir] && name.Length > 0
            ? new ServedShard(name, Path.GetFullPath(dir))
            : throw new UserInputException($"--serve '{s}': expected NAME=FOLDER")).ToList();
        var builder = Host.CreateApplicationBuilder();
        Quiet(builder.Logging);
        builder.UseOrleans(silo =>
        {
            silo.UseRedisClustering(o.Redis);
            silo.Configure<ClusterOptions>(c => (c.ClusterId, c.ServiceId) = (o.ClusterId, o.ClusterId));
            silo.Configure<SiloOptions>(s => s.SiloName = o.Name);
            silo.ConfigureEndpoints(IPAddress.Loopback, o.SiloPort, o.GatewayPort);
            silo.AddAttributionCluster(new AttributionSiloOptions
            {
                Featurize = !o.NoFeaturize,
                Session = SessionSettings.Default with { IntraOpThreads = o.Threads },
                Serves = _ => served,
            });
        });
        using var host = builder.Build();
        await host.RunAsync();
        return 0;
    }

    public static Task<int> FeaturizeAsync(FeaturizeClusterVerb o) => WithClientAsync(o, async client =>
    {
        var job = new FeaturizeJob
        {
            ModelDirectory = o.Model,
            Data = o.Data,
            Subset = o.Subset,
            Method = o.Method,
            Timesteps = o.Timesteps,
            NoiseDraws = o.NoiseDraws,
            NoiseSeed = o.NoiseSeed,
            Dim = o.Dim,
            ProjectionSeed = o.ProjectionSeed,
            DType = o.DType,
            BatchSize = o.BatchSize,
            Items = o.Items,
            WorkDirectory = Path.GetFullPath(o.Work),
            LeaseTimeout = TimeSpan.FromSeconds(o.LeaseSeconds),
        };
        string last = "";
        var clock = Stopwatch.StartNew();
        var progress = new SyncProgress<FeaturizeProgress>(p =>
        {
            if (p.Describe() != last)
            {
                Console.WriteLine($"[{clock.Elapsed.TotalSeconds,6:F1} s] {last = p.Describe()}");
            }
        });
        var result = await ClusterFeaturizer.RunAsync(client, job, o.Out, progress);
        Console.WriteLine($"merged {result.Items.Count} items into {o.Out}: {result.Rows} rows in {clock.Elapsed.TotalSeconds:F1} s; " +
            $"{result.Reassigned} items reassigned; ran on: {string.Join(", ", result.Items.Select(i => $"{i.Item}→{i.Worker?.Split('@')[0]}"))}");
        return 0;
    });

    public static Task<int> QueryAsync(QueryVerb o)
    {
        var seeds = Enumerable.Range(0, o.Count).Select(i => o.Seed + i).ToList();
        if (o.Local)
        {
            using var attributor = Attributor.Open(o.Model, o.Head);
            Write(o.Out, attributor.Attribute(attributor.GenerateQueries(seeds, steps: o.Steps), o.Top), []);
            return Task.FromResult(0);
        }
        // The model alone makes the queries: the head folder may hold the store's small files only (no features.npy).
        var queries = GeneratedQueries.Generate(ModelDirectory.Open(o.Model), seeds, SamplerKind.Ddim, o.Steps, SessionSettings.Default);
        return WithClientAsync(o, async client =>
        {
            using var head = ClusterQuery.Open(client, o.Store, o.Model, o.Head);
            var answer = await head.AttributeAsync(queries, o.Top);
            Write(o.Out, answer.Rankings, answer.Missing);
            Console.WriteLine($"{queries.Count} queries: features {head.LastTimings.Features:F1} ms, solve {head.LastTimings.Solve:F1} ms, " +
                $"fan-out to {answer.Answered.Count} shards {head.LastTimings.FanOut:F1} ms ({string.Join(", ", answer.Answered.Select(a => $"shard {a.Shard}→{a.SiloName}"))})");
            foreach (var m in answer.Missing)
            {
                Console.Error.WriteLine($"missing: shard {m.Shard}, rows {m.FirstRow}…{m.FirstRow + m.Rows - 1}: {m.Reason}");
            }
            if (o.Bench > 0)
            {
                await BenchAsync(head, o, queries[0]);
            }
            return answer.Complete ? 0 : 3;
        });
    }

    /// <summary>p50 of a one-query fan-out against a local scan of the merged store with the same preconditioned vector.</summary>
    private static async Task BenchAsync(ClusterQuery head, QueryVerb o, Core.Attribution.Methods.AttributionQuery query)
    {
        var x = head.Precondition([query]);
        using var local = FeatureStore.Open(o.Head);
        var fan = new List<double>();
        var scan = new List<double>();
        for (int i = 0; i < o.Bench; i++)
        {
            var clock = Stopwatch.StartNew();
            await head.FanOutAsync(x, [query.Label], o.Top);
            fan.Add(clock.Elapsed.TotalMilliseconds);
            clock.Restart();
            local.TopK(x, 1, o.Top);
            scan.Add(clock.Elapsed.TotalMilliseconds);
        }
        static double P50(List<double> v) => v.Order().ElementAt(v.Count / 2);
        Console.WriteLine($"bench ({o.Bench} rounds, 1 query, top {o.Top}): fan-out p50 {P50(fan):F2} ms, local scan of {local.Rows} rows p50 {P50(scan):F2} ms");
    }

    private static void Write(string path, IReadOnlyList<QueryRanking> rankings, IReadOnlyList<MissingRows> missing)
    {
        using var w = new StreamWriter(path);
        foreach (var ranking in rankings)
        {
            foreach (var row in ranking.Top)
            {
                w.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{ranking.Query}\t{row.Rank}\t{row.Index}\t{row.Score:R}"));
            }
        }
        foreach (var m in missing)
        {
            w.WriteLine($"missing\tshard {m.Shard}\trows {m.FirstRow}…{m.FirstRow + m.Rows - 1}");
        }
    }

    private static async Task<int> WithClientAsync(ClusterVerb o, Func<IClusterClient, Task<int>> run)
    {
        using var host = await ClusterClient.StartAsync(o.Redis, o.ClusterId, Quiet);
        try
        {
            return await run(ClusterClient.Of(host));
        }
        catch (AttributionException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
        finally
        {
            await host.StopAsync();
        }
    }

    private static void Quiet(ILoggingBuilder logging)
    {
        logging.SetMinimumLevel(LogLevel.Warning);
        logging.AddFilter("OnnxAttribution", LogLevel.Information);
        logging.AddSimpleConsole(c => (c.SingleLine, c.TimestampFormat) = (true, "HH:mm:ss "));
    }
}
