using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Messaging;

namespace OnnxAttribution.Cluster;

/// <summary>
/// An Orleans client of the attribution cluster whose membership table is in Redis (the silos' --redis and --cluster-id); it
/// finds the gateways through <see cref="RedisGateways"/>, without the silo runtime.
/// </summary>
public static class ClusterClient
{
    /// <summary>The cluster id silos and clients use unless told otherwise.</summary>
    public const string DefaultClusterId = "onnx-attribution";

    /// <summary>
    /// Builds and starts a host holding a connected client (<c>host.Services.GetRequiredService&lt;IClusterClient&gt;()</c>);
    /// stop and dispose the host to leave the cluster.
    /// </summary>
    /// <param name="redis">The Redis server of the membership table, host:port.</param>
    /// <param name="clusterId">The cluster's id.</param>
    /// <param name="logging">Logging settings for the host (e.g. the caller's levels and console format).</param>
    /// <param name="cancel">Stops waiting for the connection.</param>
    public static async Task<IHost> StartAsync(string redis, string clusterId, Action<ILoggingBuilder>? logging = null, CancellationToken cancel = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(redis);
        ArgumentException.ThrowIfNullOrEmpty(clusterId);
        var builder = Host.CreateApplicationBuilder();
        logging?.Invoke(builder.Logging);
        builder.UseOrleansClient(c =>
        {
            c.Services.AddSingleton<IGatewayListProvider>(services => new RedisGateways(redis,
                services.GetRequiredService<IOptions<ClusterOptions>>(), services.GetRequiredService<IOptions<GatewayOptions>>()));
            c.Configure<ClusterOptions>(x => (x.ClusterId, x.ServiceId) = (clusterId, clusterId));
        });
        var host = builder.Build();
        try
        {
            await host.StartAsync(cancel);
            return host;
        }
        catch
        {
            host.Dispose();
            throw;
        }
    }

    /// <summary>The client of a host made by <see cref="StartAsync"/>.</summary>
    public static IClusterClient Of(IHost host)
    {
        ArgumentNullException.ThrowIfNull(host);
        return host.Services.GetRequiredService<IClusterClient>();
    }
}
