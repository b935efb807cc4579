using Microsoft.AspNetCore.Builder;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Server.Tests.Support;

/// <summary>The real server (Kestrel on a free loopback port) over some stores, and a client for it; disposing stops both.</summary>
internal sealed class RunningServer : IAsyncDisposable
{
    private RunningServer(WebApplication app)
    {
        App = app;
        Http = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };
    }

    public HttpClient Http { get; }

    /// <summary>The running application (to stop it while requests are in flight).</summary>
    public WebApplication App { get; }

    public static Task<RunningServer> StartAsync(IReadOnlyList<StoreSpec> stores) =>
        StartAsync(new ServerOptions(stores, null, "http://127.0.0.1:0", SessionSettings.Default));

    /// <summary>Starts the server with these options, listening on a free loopback port whatever their URLs say.</summary>
    public static async Task<RunningServer> StartAsync(ServerOptions options)
    {
        var app = ServerApp.Build(options with { Urls = "http://127.0.0.1:0" });
        await app.StartAsync();
        return new RunningServer(app);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
