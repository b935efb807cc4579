using System.Net;
using System.Net.Http.Json;
using OnnxAttribution.Runtime;
using OnnxAttribution.Server.Tests.Support;

namespace OnnxAttribution.Server.Tests;

/// <summary>
/// Two servers in one process (as in these tests, or a host that runs two): each one's /metrics counts its own requests and
/// lists its own stores only. OpenTelemetry subscribes to meters by name, and both servers' meters have the same name; the
/// server enables its meter for its own listeners only (meters of its own IMeterFactory), which these tests hold it to.
/// </summary>
[TestFixture]
public sealed class ServerMetricsTests
{
    private TemporaryStore _store = null!;
    private RunningServer _first = null!;
    private RunningServer _second = null!;

    [OneTimeSetUp]
    public async Task StartServers()
    {
        _store = new TemporaryStore("oa-server-metrics-", 8, 64);
        _first = await RunningServer.StartAsync(new ServerOptions([new StoreSpec("first", _store.Directory)], null, "", SessionSettings.Default));
        _second = await RunningServer.StartAsync(new ServerOptions([new StoreSpec("second", _store.Directory)], null, "", SessionSettings.Default));
    }

    [OneTimeTearDown]
    public async Task StopServers()
    {
        foreach (var server in new[] { _first, _second }.Where(s => s is not null))
        {
            await server.DisposeAsync();
        }
        _store?.Dispose();
    }

    [Test]
    public async Task Metrics_TwoServersInOneProcess_EachCountsItsOwnRequestsAndStores()
    {
        for (int i = 0; i < 3; i++)
        {
            using var stores = await _first.Http.GetAsync("/stores");
            Assert.That(stores.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        }
        using (var stores = await _second.Http.GetAsync("/stores"))
        {
            Assert.That(stores.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        }
        using (var query = await _second.Http.PostAsJsonAsync("/stores/second/attribute?top=2", new { images = new[] { new float[256] } }))
        {
            Assert.That(query.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        }

        string first = await Scrape(_first), second = await Scrape(_second);

        Assert.That(first, Does.Match("""(?m)^oa_http_requests_total\{method="GET",route="/stores",status="200"\} 3$"""), first);
        Assert.That(second, Does.Match("""(?m)^oa_http_requests_total\{method="GET",route="/stores",status="200"\} 1$"""), second);
        Assert.That(first, Does.Not.Contain("/stores/{name}/attribute"), "the second server's query");
        Assert.That(second, Does.Match("""(?m)^oa_store_batch_requests_count\{store="second"\} 1$"""));
        Assert.That(first, Does.Contain("""oa_store_rows{store="first"} 8""").And.Not.Contain("store=\"second\""));
        Assert.That(second, Does.Contain("""oa_store_rows{store="second"} 8""").And.Not.Contain("store=\"first\""));
    }

    [Test]
    public async Task Metrics_ScraperAcceptsOpenMetrics_OpenMetricsText()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        request.Headers.Accept.ParseAdd("application/openmetrics-text; version=1.0.0");
        using var response = await _first.Http.SendAsync(request);
        Assert.That(response.Content.Headers.ContentType!.MediaType, Is.EqualTo("application/openmetrics-text"));
        Assert.That((await response.Content.ReadAsStringAsync()).TrimEnd(), Does.EndWith("# EOF").And.Contain("oa_store_rows"));
    }

    private static async Task<string> Scrape(RunningServer server)
    {
        using var response = await server.Http.GetAsync("/metrics");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        return await response.Content.ReadAsStringAsync();
    }
}
