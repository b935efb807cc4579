using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using OnnxAttribution.Runtime;
using OnnxAttribution.Server.Tests.Support;

namespace OnnxAttribution.Server.Tests;

/// <summary>
/// The real server under an expensive request: image queries are answered while seeds are sampled, a lane with too much
/// work ahead answers 429 with Retry-After at once, a request past its timeout is cancelled (its sampling stops), and a
/// stop drains in-flight work.
/// </summary>
[TestFixture]
public sealed class ServerLoadTests
{
    private const string StoreName = "load";
    private const int Rows = 16;

    private TemporaryStore _temporary = null!;

    [OneTimeSetUp]
    public void BuildStore() => _temporary = new TemporaryStore("oa-server-load-", 16, 64);

    [OneTimeTearDown]
    public void DeleteStore() => _temporary?.Dispose();

    [Test]
    public async Task ExpensiveSeedRequest_ImagesAnsweredMeanwhile_BusyLane429_TimeoutCancelsTheSampling()
    {
        await using var server = await Start(new ServerLimits { MaxSeedSteps = 1_000_000, SeedQueueLength = 1, RequestTimeout = TimeSpan.FromSeconds(2) });
        var http = server.Http;
        var clock = Stopwatch.StartNew();
        // 64 seeds × 1000 DDPM steps: far longer than the 2 s timeout. The lane is idle, so it is taken.
        var expensive = http.PostAsJsonAsync(AttributePath, new { seeds = Enumerable.Range(0, 64).ToArray(), sampler = "ddpm", steps = 1000 });
        await Task.Delay(500);

        using (var image = await http.PostAsJsonAsync(AttributePath, new { images = new[] { new float[256] } }))
        {
            Assert.That(image.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(expensive.IsCompleted, Is.False, "the image query waited for the sampling");
        }

        // The work ahead (64 × 1000 steps) is far beyond half the timeout: refused at once, and not ready.
        using (var ready = await http.GetAsync("/readyz"))
        {
            Assert.That(ready.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
            Assert.That((await ready.Content.ReadFromJsonAsync<ReadyResponse>())!.Reasons, Has.Some.Contains("seeds lane is busy"));
        }
        using (var refused = await http.PostAsJsonAsync(AttributePath, new { seeds = new[] { 2 }, steps = 5 }))
        {
            Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests));
            Assert.That(refused.Headers.RetryAfter?.Delta, Is.GreaterThanOrEqualTo(TimeSpan.FromSeconds(1)));
            Assert.That(await Responses.Error(refused), Does.Contain("is busy").And.Contain("--request-timeout"));
        }

        using (var timedOut = await expensive)
        {
            Assert.That(timedOut.StatusCode, Is.EqualTo(HttpStatusCode.GatewayTimeout));
            Assert.That(await Responses.Error(timedOut), Does.Contain("--request-timeout"));
        }
        // The sampler is free again at once: the timed-out request's sampling stopped rather than running to its end.
        using (var after = await http.PostAsJsonAsync(AttributePath, new { seeds = new[] { 3 }, steps = 5 }))
        {
            Assert.That(after.StatusCode, Is.EqualTo(HttpStatusCode.OK), await after.Content.ReadAsStringAsync());
        }
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(20)), "64 × 1000 steps ran to the end");
    }

    [TestCase(1, 64, "--max-wait-ms")]
    [TestCase(60_000, 1, "--queue")]
    public async Task ImageQueriesBehindALongOne_BeyondTheBudget429AtOnce_ServedAfterwards(int maxWaitMs, int queue, string option)
    {
        await using var server = await Start(new ServerLimits { MaxWait = TimeSpan.FromMilliseconds(maxWaitMs), QueueLength = queue });
        var http = server.Http;
        // 24 images in one request: the scorer is busy with it for a while.
        var images = Enumerable.Range(0, 24).Select(i => Enumerable.Repeat((i % 17 / 8f) - 1, 256).ToArray()).ToArray();
        var longOne = http.PostAsJsonAsync(AttributePath, new { images });
        if (maxWaitMs < 10)
        {
            // With a budget of 1 ms, a single image running would have the long one refused: send them once it runs
            // (readiness then says the lane is busy).
            while (!longOne.IsCompleted)
            {
                using var ready = await http.GetAsync("/readyz");
                if (ready.StatusCode == HttpStatusCode.ServiceUnavailable)
                {
                    break;
                }
                await Task.Delay(2);
            }
        }
        var refusals = new List<HttpResponseMessage>();
        var answered = new List<HttpStatusCode>();
        while (!longOne.IsCompleted && refusals.Count == 0)
        {
            // Three at once: with a queue of one, the second of them finds it full.
            var three = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => http.PostAsJsonAsync(AttributePath, new { images = new[] { new float[256] } })));
            foreach (var response in three)
            {
                if (response.StatusCode == HttpStatusCode.TooManyRequests)
                {
                    refusals.Add(response);
                }
                else
                {
                    answered.Add(response.StatusCode);
                    response.Dispose();
                }
            }
        }
        // The long one is answered, or (sent while a single image waited) refused as the others are: never a 5xx.
        var done = await longOne;
        if (done.StatusCode == HttpStatusCode.TooManyRequests)
        {
            refusals.Add(done);
        }
        else
        {
            Assert.That(done.StatusCode, Is.EqualTo(HttpStatusCode.OK), await done.Content.ReadAsStringAsync());
            done.Dispose();
        }
        Assert.That(refusals, Is.Not.Empty, "no request was refused while 24 images were scored");
        Assert.That(answered, Is.All.EqualTo(HttpStatusCode.OK));
        var refused = refusals[0];
        Assert.That(refused.Headers.RetryAfter?.Delta, Is.GreaterThanOrEqualTo(TimeSpan.FromSeconds(1)));
        Assert.That(await Responses.Error(refused), Does.Contain("is busy").And.Contain(option));
        refusals.ForEach(r => r.Dispose());

        using var after = await http.PostAsJsonAsync(AttributePath, new { images = new[] { new float[256] } });
        Assert.That(after.StatusCode, Is.EqualTo(HttpStatusCode.OK), "an idle store takes any request");
    }

    [Test]
    public async Task Stop_WithARequestInFlight_ItIsAnsweredBeforeTheServerStops()
    {
        var server = await Start(new ServerLimits());
        try
        {
            var inFlight = server.Http.PostAsJsonAsync(AttributePath, new { seeds = new[] { 1, 2 }, steps = 200 });
            await Task.Delay(200);
            var stopping = server.App.StopAsync();
            using var response = await inFlight;
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
            await stopping;
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    [Test]
    public async Task Stop_PastTheDrainTimeout_InFlightWorkIsCancelled()
    {
        var server = await Start(new ServerLimits { MaxSeedSteps = 1_000_000, RequestTimeout = TimeSpan.FromMinutes(5) }, drain: TimeSpan.FromSeconds(1));
        var inFlight = server.Http.PostAsJsonAsync(AttributePath, new { seeds = Enumerable.Range(0, 64).ToArray(), sampler = "ddpm", steps = 1000 });
        await Task.Delay(500);
        var clock = Stopwatch.StartNew();
        try
        {
            // Stopping (not disposing the client, which would cancel the request from its side): Kestrel waits 1 s, then aborts.
            await server.App.StopAsync();
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), "the store waited for the sampling to end");
            Assert.That(async () => (await inFlight).EnsureSuccessStatusCode(), Throws.InstanceOf<HttpRequestException>());
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    [Test]
    public async Task Run_PortInUse_ExitsTwo()
    {
        using var taken = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port;
        int code = await ServerApp.RunAsync(["--store", _temporary.Directory, "--urls", $"http://127.0.0.1:{port}"]);
        Assert.That(code, Is.EqualTo((int)ServerExit.BadInput));
    }

    private Task<RunningServer> Start(ServerLimits limits, TimeSpan? drain = null) =>
        RunningServer.StartAsync(new ServerOptions([new StoreSpec(StoreName, _temporary.Directory)], null, "", SessionSettings.Default)
        {
            Limits = limits,
            DrainTimeout = drain ?? TimeSpan.FromSeconds(10),
        });

    private static string AttributePath => $"/stores/{StoreName}/attribute?top=3";
}
