using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OnnxAttribution.Cluster.Serving;
using OnnxAttribution.Cluster.Silo;
using Orleans.Configuration;
using StackExchange.Redis;

namespace OnnxAttribution.Cluster.Tests;

/// <summary>
/// The client's own reader of the Redis membership table (<see cref="RedisGateways"/>) against a silo that Orleans' Redis
/// provider (Microsoft.Orleans.Clustering.Redis, the host's <c>silo --redis</c>) registered in a real redis-server: the
/// entry's format as that provider writes it, and a client (<see cref="ClusterClient"/>, as the HTTP server joins) that
/// reaches the silo's grains through it. Needs Debian's redis-server (scripts/setup.sh --torch installs it).
/// </summary>
[TestFixture]
public sealed class RedisGatewaysTests
{
    private const string RedisServer = "/usr/bin/redis-server";
    private const string ClusterId = "redis-gateways-test";

    [Test]
    public async Task ClusterClient_SiloRegisteredByOrleansRedisProvider_FindsItsGatewayAndCallsAGrain()
    {
        using var redisServer = await RedisProcess.StartAsync();
        int siloPort = FreePort(), gatewayPort = FreePort();
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.UseOrleans(silo =>
        {
            silo.UseRedisClustering(redisServer.Endpoint);
            silo.Configure<ClusterOptions>(c => (c.ClusterId, c.ServiceId) = (ClusterId, ClusterId));
            silo.ConfigureEndpoints(IPAddress.Loopback, siloPort, gatewayPort);
            silo.AddAttributionCluster(new AttributionSiloOptions { Featurize = false });
        });
        using var silo = builder.Build();
        await silo.StartAsync();
        try
        {
            // The table as Orleans' provider wrote it, read as the client reads it.
            await using (var redis = await ConnectionMultiplexer.ConnectAsync(redisServer.Endpoint))
            {
                var rows = await redis.GetDatabase().HashGetAllAsync(RedisGateways.TableKey(new ClusterOptions { ClusterId = ClusterId, ServiceId = ClusterId }));
                var gateways = rows.Where(r => r.Name != "Version").Select(r => RedisGateways.Gateway(r.Value.ToString())).ToList();
                Assert.That(gateways, Has.Count.EqualTo(1));
                Assert.That(gateways[0]!.Port, Is.EqualTo(gatewayPort));
                Assert.That(gateways[0]!.Host, Is.EqualTo("127.0.0.1"));
            }

            using var client = await ClusterClient.StartAsync(redisServer.Endpoint, ClusterId).WaitAsync(TimeSpan.FromSeconds(60));
            try
            {
                var replicas = await ClusterClient.Of(client).GetGrain<IShardRegistryGrain>("nothing-served").GetAsync().WaitAsync(TimeSpan.FromSeconds(30));
                Assert.That(replicas, Is.Empty);
            }
            finally
            {
                await client.StopAsync();
            }
        }
        finally
        {
            await silo.StopAsync();
        }
    }

    [TestCase(4, 0, Description = "stopping")]
    [TestCase(6, 0, Description = "dead")]
    [TestCase(3, 0, Description = "active, no gateway port")]
    public void Gateway_InactiveOrWithoutGateway_None(int status, int proxyPort)
    {
        string entry = $$"""{"SiloAddress":{"SiloAddress":"127.0.0.1:11111@1234"},"Status":{{status}},"ProxyPort":{{proxyPort}}}""";
        Assert.That(RedisGateways.Gateway(entry), Is.Null);
    }

    [Test]
    public void Gateway_ActiveEntry_GatewayUriOnItsProxyPortAndGeneration()
    {
        var uri = RedisGateways.Gateway("""{"SiloAddress":{"SiloAddress":"127.0.0.1:11111@1234"},"Status":3,"ProxyPort":30000,"SiloName":"silo0"}""");
        Assert.That(uri, Is.EqualTo(new Uri("gwy.tcp://127.0.0.1:30000/1234")));
    }

    [Test]
    public void Gateway_NotAMembershipEntry_FormatExceptionNamingTheFields()
    {
        var e = Assert.Throws<FormatException>(() => RedisGateways.Gateway("""{"Status":3}"""));
        Assert.That(e!.Message, Does.Contain("SiloAddress.SiloAddress, Status and ProxyPort"));
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>A redis-server of the test's own on a free loopback port, without persistence; disposing kills it.</summary>
    private sealed class RedisProcess : IDisposable
    {
        private readonly Process _process;

        private RedisProcess(Process process, string endpoint) => (_process, Endpoint) = (process, endpoint);

        /// <summary>host:port, as --redis takes it.</summary>
        public string Endpoint { get; }

        public static async Task<RedisProcess> StartAsync()
        {
            Assert.That(File.Exists(RedisServer), Is.True, $"{RedisServer} is missing: install Debian's redis-server (scripts/setup.sh --torch does)");
            int port = FreePort();
            var start = new ProcessStartInfo(RedisServer, ["--bind", "127.0.0.1", "--port", $"{port}", "--save", "", "--appendonly", "no", "--loglevel", "warning"])
            {
                RedirectStandardOutput = true,
                UseShellExecute = false,
            };
            var redis = new RedisProcess(Process.Start(start)!, $"127.0.0.1:{port}");
            for (int i = 0; ; i++)
            {
                try
                {
                    await using var probe = await ConnectionMultiplexer.ConnectAsync(redis.Endpoint);
                    return redis;
                }
                catch (RedisConnectionException) when (i < 50)
                {
                    await Task.Delay(100);
                }
                catch
                {
                    redis.Dispose();
                    throw;
                }
            }
        }

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                _process.WaitForExit();
            }
            _process.Dispose();
        }
    }
}
