using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using OnnxAttribution.Imaging;
using OnnxAttribution.Runtime;
using OnnxAttribution.Server;
using Orleans.TestingHost;

namespace OnnxAttribution.Cluster.Tests;

/// <summary>The HTTP server fronting a 3-silo test cluster (<c>--cluster-store</c>) beside the merged store served on this machine.</summary>
internal sealed class ClusterServer : IAsyncDisposable
{
    /// <summary>The merged store's name on the server: the single-machine answer.</summary>
    public const string Local = "local";

    private readonly WebApplication _app;

    private ClusterServer(WebApplication app)
    {
        _app = app;
        Http = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };
    }

    public HttpClient Http { get; }

    /// <summary>Starts the server: <paramref name="clusterStores"/> through <paramref name="cluster"/> with the head folder, and the merged store as <see cref="Local"/>.</summary>
    public static async Task<ClusterServer> StartAsync(TestCluster cluster, string model, string head, string merged, params string[] clusterStores)
    {
        var specs = clusterStores.Select(s => new StoreSpec(s, head, Cluster: true)).Append(new StoreSpec(Local, merged)).ToList();
        var app = ServerApp.Build(new ServerOptions(specs, model, "http://127.0.0.1:0", SessionSettings.Default) { ClusterGrains = cluster.Client });
        await app.StartAsync();
        return new ClusterServer(app);
    }

    /// <summary>POSTs the PNG to a store; the answer must be 200.</summary>
    public async Task<AttributeResponse> AttributeAsync(string store, byte[] png, int top)
    {
        using var body = new ByteArrayContent(png);
        body.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        using var response = await Http.PostAsync($"/stores/{store}/attribute?top={top}", body);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<AttributeResponse>())!;
    }

    /// <summary>A query image as a PNG (8-bit: the server decodes the same pixels for every store).</summary>
    public static byte[] Png(string directory, float[] image)
    {
        string path = Path.Combine(directory, $"query-{Guid.NewGuid():N}.png");
        PngImage.Write(path, image, 1, 16, 16);
        return File.ReadAllBytes(path);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
