using System.Net;
using OnnxAttribution.Runtime;
using OnnxAttribution.Server.Tests.Support;

namespace OnnxAttribution.Server.Tests;

/// <summary>API keys and per-key rate limits on the real server.</summary>
[TestFixture]
public sealed class ServerAccessTests
{
    private const string First = "first-key-0123456789";
    private const string Second = "second-key-0123456789";

    private TemporaryStore _temporary = null!;

    [OneTimeSetUp]
    public void BuildStore() => _temporary = new TemporaryStore("oa-server-access-", 8, 32);

    [OneTimeTearDown]
    public void DeleteStore() => _temporary?.Dispose();

    [Test]
    public async Task ApiKeys_ProbesOpen_OtherEndpointsNeedAnAcceptedKey()
    {
        await using var server = await Start(new AccessOptions { ApiKeys = [First, Second] });
        using (var health = await server.Http.GetAsync("/healthz"))
        {
            Assert.That(health.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        }
        using (var none = await server.Http.GetAsync("/stores"))
        {
            Assert.That(none.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
            Assert.That(none.Headers.WwwAuthenticate.ToString(), Is.EqualTo("Bearer"));
            Assert.That(await Responses.Error(none), Does.Contain("API key is required"));
        }
        using (var wrong = await Get(server, "/metrics", ("Authorization", "Bearer not-a-key-of-ours-at-all")))
        {
            Assert.That(wrong.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
            Assert.That(await Responses.Error(wrong), Does.Contain("not one this server accepts"));
        }
        using (var bearer = await Get(server, "/stores", ("Authorization", $"Bearer {First}")))
        {
            Assert.That(bearer.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        }
        using (var header = await Get(server, "/stores", ("X-Api-Key", Second)))
        {
            Assert.That(header.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        }
    }

    [Test]
    public async Task RateLimit_AKeyBeyondItsBurst_429WithRetryAfter_OtherKeysUnaffected()
    {
        await using var server = await Start(new AccessOptions { ApiKeys = [First, Second], RequestsPerSecond = 0.2, Burst = 2 });
        for (int i = 0; i < 2; i++)
        {
            using var allowed = await Get(server, "/stores", ("X-Api-Key", First));
            Assert.That(allowed.StatusCode, Is.EqualTo(HttpStatusCode.OK), $"request {i + 1} of the burst");
        }
        using (var limited = await Get(server, "/stores", ("X-Api-Key", First)))
        {
            Assert.That(limited.StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests));
            Assert.That(limited.Headers.RetryAfter?.Delta, Is.GreaterThanOrEqualTo(TimeSpan.FromSeconds(1)));
            Assert.That(await Responses.Error(limited), Does.Contain("key#1").And.Contain("--rate-limit"));
        }
        using (var other = await Get(server, "/stores", ("X-Api-Key", Second)))
        {
            Assert.That(other.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        }
        using (var probe = await server.Http.GetAsync("/readyz"))
        {
            Assert.That(probe.StatusCode, Is.EqualTo(HttpStatusCode.OK), "probes are not rate-limited");
        }
    }

    private Task<RunningServer> Start(AccessOptions access) =>
        RunningServer.StartAsync(new ServerOptions([new StoreSpec("s", _temporary.Directory)], null, "", SessionSettings.Default) { Access = access });

    private static async Task<HttpResponseMessage> Get(RunningServer server, string path, (string Name, string Value) header)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.TryAddWithoutValidation(header.Name, header.Value);
        return await server.Http.SendAsync(request);
    }
}
