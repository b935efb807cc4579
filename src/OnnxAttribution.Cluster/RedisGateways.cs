using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Messaging;
using StackExchange.Redis;

namespace OnnxAttribution.Cluster;

/// <summary>
/// The cluster's gateways for a client, read from the membership table that the silos keep in Redis
/// (Microsoft.Orleans.Clustering.Redis): one hash, <c>{ServiceId}/members/{ClusterId}</c>, a field per silo holding its
/// membership entry as JSON, beside the table's <c>Version</c>. Orleans' own reader of that table comes with the silo runtime,
/// which a client (the HTTP server) must not carry, so the client reads the three fields it needs itself: the silo's address,
/// its status and its gateway port. <c>RedisGatewaysTests</c> checks it against silos that Orleans' provider registered.
/// </summary>
internal sealed class RedisGateways(string redis, IOptions<ClusterOptions> cluster, IOptions<GatewayOptions> gateway) : IGatewayListProvider, IAsyncDisposable
{
    private const string VersionField = "Version";

    private readonly SemaphoreSlim _connecting = new(1, 1);
    private ConnectionMultiplexer? _connection;

    /// <inheritdoc/>
    public TimeSpan MaxStaleness => gateway.Value.GatewayListRefreshPeriod;

    /// <inheritdoc/>
    public bool IsUpdatable => true;

    /// <summary>The Redis key of the membership table (Microsoft.Orleans.Clustering.Redis' default key).</summary>
    public static RedisKey TableKey(ClusterOptions cluster)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        return Encoding.UTF8.GetBytes($"{cluster.ServiceId}/members/{cluster.ClusterId}");
    }

    /// <inheritdoc/>
    public async Task InitializeGatewayListProvider()
    {
        await _connecting.WaitAsync().ConfigureAwait(false);
        try
        {
            _connection ??= await ConnectionMultiplexer.ConnectAsync(redis).ConfigureAwait(false);
        }
        finally
        {
            _connecting.Release();
        }
    }

    /// <inheritdoc/>
    public async Task<IList<Uri>> GetGateways()
    {
        await InitializeGatewayListProvider().ConfigureAwait(false);
        var rows = await _connection!.GetDatabase().HashGetAllAsync(TableKey(cluster.Value)).ConfigureAwait(false);
        return rows.Where(r => r.Name != VersionField && r.Value.HasValue).Select(r => Gateway(r.Value.ToString())).OfType<Uri>().ToList();
    }

    /// <summary>
    /// The gateway of one membership entry (Orleans' <c>MembershipEntry</c> as the Redis provider writes it), or null when the
    /// silo is not active or has no gateway.
    /// </summary>
    /// <exception cref="FormatException">The entry is not the JSON the provider writes (the field named).</exception>
    public static Uri? Gateway(string entryJson)
    {
        using var entry = JsonDocument.Parse(entryJson);
        var root = entry.RootElement;
        if (!root.TryGetProperty("SiloAddress", out var address) || !address.TryGetProperty("SiloAddress", out var parsable) ||
            !root.TryGetProperty("Status", out var statusValue) || !root.TryGetProperty("ProxyPort", out var port))
        {
            throw new FormatException($"membership entry {entryJson}: expected SiloAddress.SiloAddress, Status and ProxyPort");
        }
        // Newtonsoft writes the enum as its number; its name is accepted too.
        var status = statusValue.ValueKind == JsonValueKind.Number ? (SiloStatus)statusValue.GetInt32() : Enum.Parse<SiloStatus>(statusValue.GetString()!);
        if (status != SiloStatus.Active || port.GetInt32() == 0)
        {
            return null;
        }
        var silo = SiloAddress.FromParsableString(parsable.GetString()!);
        return SiloAddress.New(new IPEndPoint(silo.Endpoint.Address, port.GetInt32()), silo.Generation).ToGatewayUri();
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
        }
        _connecting.Dispose();
    }
}
