using Microsoft.AspNetCore.Builder;
using OnnxAttribution.Core.Runtime;

namespace OnnxAttribution.Server.Tests.Support;

/// <summary>The real server (Kestrel on a free loopback port) over some stores, and a client for it; disposing stops both.</summary>
internal sealed class RunningServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private RunningServer(WebApplication app)
    {
        _app = app;
        Http = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };
    }

    public HttpClient Http { get; }

    public static async Task<RunningServer> StartAsync(IReadOnlyList<StoreSpec> stores)
    {
        var app = ServerApp.Build(new ServerOptions(stores, null, "http://127.0.0.1:0", SessionSettings.Default));
        await app.StartAsync();
        return new RunningServer(app);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
