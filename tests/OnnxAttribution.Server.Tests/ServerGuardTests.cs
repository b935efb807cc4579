using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Json;
using OnnxAttribution.Imaging;
using OnnxAttribution.Runtime;
using OnnxAttribution.Server.Tests.Support;

namespace OnnxAttribution.Server.Tests;

/// <summary>
/// What a careless or hostile client gets from the real server with small limits: requests beyond a limit refused with
/// the limit named, before the work; every error status as JSON; readiness and metrics.
/// </summary>
[TestFixture]
public sealed class ServerGuardTests
{
    private const string StoreName = "guard";
    private const int Rows = 16;

    private static readonly ServerLimits Limits = new()
    {
        MaxSeedSteps = 20,
        PngSideFactor = 2,
        MaxBodyBytes = 64 * 1024,
        MaxUrlLength = 300,
    };

    private TemporaryStore _store = null!;
    private RunningServer _server = null!;

    [OneTimeSetUp]
    public async Task StartServer()
    {
        _store = new TemporaryStore("oa-server-guard-", Rows, 64);
        _server = await RunningServer.StartAsync(new ServerOptions([new StoreSpec(StoreName, _store.Directory)], null, "", SessionSettings.Default) { Limits = Limits });
    }

    [OneTimeTearDown]
    public async Task StopServer()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
        _store?.Dispose();
    }

    [Test]
    public async Task Attribute_SeedsTimesStepsBeyondTheLimit_400NamingTheLimit()
    {
        using var response = await _server.Http.PostAsJsonAsync(AttributePath, new { seeds = new long[] { 1, 2, 3 }, steps = 7 });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await Responses.Error(response), Does.Contain("3 × 7 = 21").And.Contain("at most 20").And.Contain("--max-seed-steps"));
    }

    [Test]
    public async Task Attribute_SeedsWithinTheLimit_200()
    {
        using var response = await _server.Http.PostAsJsonAsync(AttributePath, new { seeds = new long[] { 1, 2 }, steps = 10 });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
    }

    [Test]
    public async Task Attribute_SmallPngDeclaring8192Squared_400BeforeDecoding()
    {
        var bomb = PngDeclaring(8192, 8192);
        Assert.That(bomb, Has.Length.LessThan(1024), "the upload is small; only its header is large");
        using var body = new ByteArrayContent(bomb);
        body.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("image/png");
        using var response = await _server.Http.PostAsync(AttributePath, body);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await Responses.Error(response), Does.Contain("8192×8192").And.Contain("at most 32×32").And.Contain("--png-side-factor"));
    }

    [Test]
    public async Task Attribute_PngWithinTheSideLimit_200()
    {
        using var response = await _server.Http.PostAsJsonAsync(AttributePath, new { png = Convert.ToBase64String(PngDeclaring(32, 32, patch: false)) });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
    }

    [TestCase(1e30f, "1E+30")]
    [TestCase(-2e6f, "-2000000")]
    public async Task Attribute_AbsurdPixelValue_400NamingFieldAndIndex(float value, string shown)
    {
        var image = new float[256];
        image[5] = value;
        using var response = await _server.Http.PostAsJsonAsync(AttributePath, new { images = new[] { new float[256], image } });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await Responses.Error(response), Does.Contain("'images[1][5]'").And.Contain(shown).And.Contain("finite"));
    }

    [TestCase("NaN")]
    [TestCase("Infinity")]
    [TestCase("1e39")]
    public async Task Attribute_NonFinitePixelInJson_400(string value)
    {
        var pixels = string.Join(",", Enumerable.Repeat("0", 255));
        using var content = new StringContent($$"""{"images":[[{{pixels}},{{value}}]]}""", System.Text.Encoding.UTF8, "application/json");
        using var response = await _server.Http.PostAsync(AttributePath, content);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await Responses.Error(response), Does.Contain("images[0]"));
    }

    [Test]
    public async Task Attribute_BodyBeyondTheLimit_413AsJsonNamingTheLimit()
    {
        using var body = new ByteArrayContent(new byte[Limits.MaxBodyBytes + 1]);
        body.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("image/png");
        using var response = await _server.Http.PostAsync(AttributePath, body);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge));
        Assert.That(await Responses.Error(response), Does.Contain("--max-body-bytes"));
    }

    [Test]
    public async Task LongUrl_414AsJsonNamingTheLimit()
    {
        using var response = await _server.Http.GetAsync("/stores?" + new string('x', 400));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.RequestUriTooLong));
        Assert.That(await Responses.Error(response), Does.Contain("--max-url-length"));
    }

    [Test]
    public async Task UnknownPath_404AsJson()
    {
        using var response = await _server.Http.GetAsync("/nothing/here");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        string error = await Responses.Error(response);
        Assert.That(error, Does.Contain("/nothing/here").And.Contain("POST /stores/{name}/attribute").And.Contain("/stores/{name}/report"));
        Assert.That(error, Does.Not.Contain("{{"), "every endpoint written as a client types it");
    }

    [Test]
    public async Task WrongMethod_405AsJson()
    {
        using var response = await _server.Http.GetAsync(AttributePath);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.MethodNotAllowed));
        Assert.That(await Responses.Error(response), Does.Contain("GET is not allowed"));
    }

    [Test]
    public async Task Readyz_Idle_Ready()
    {
        using var response = await _server.Http.GetAsync("/readyz");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That((await response.Content.ReadFromJsonAsync<ReadyResponse>())!.Status, Is.EqualTo("ready"));
    }

    [Test]
    public async Task Metrics_AfterAQuery_CountsItByStatusWithLatencyQueuesAndBatches()
    {
        using (var query = await _server.Http.PostAsJsonAsync(AttributePath, new { images = new[] { new float[256] } }))
        {
            Assert.That(query.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        }
        using var response = await _server.Http.GetAsync("/metrics");
        Assert.That(response.Content.Headers.ContentType!.MediaType, Is.EqualTo("text/plain"));
        string text = await response.Content.ReadAsStringAsync();
        // The exporter writes a series' labels in name order.
        Assert.That(text, Does.Match("""oa_http_requests_total\{method="POST",route="/stores/\{name\}/attribute",status="200"\} [1-9]"""));
        Assert.That(text, Does.Contain("""oa_http_request_duration_seconds_bucket{route="/stores/{name}/attribute",le="+Inf"}"""));
        Assert.That(text, Does.Contain("""oa_http_request_duration_seconds_bucket{route="/stores/{name}/attribute",le="0.005"}"""), "the latency buckets");
        Assert.That(text, Does.Contain($$"""oa_queue_waiting{lane="score",store="{{StoreName}}"} 0"""));
        Assert.That(text, Does.Contain($$"""oa_queue_capacity{lane="seeds",store="{{StoreName}}"} {{Limits.SeedQueueLength}}"""));
        Assert.That(text, Does.Match($$"""oa_store_batch_requests_count\{store="{{StoreName}}"\} [1-9]"""));
        Assert.That(text, Does.Contain($$"""oa_store_batch_requests_bucket{store="{{StoreName}}",le="256"}"""), "the batch-size buckets");
        Assert.That(text, Does.Contain($$"""oa_store_score_seconds_sum{store="{{StoreName}}"}"""));
        Assert.That(text, Does.Contain($$"""oa_store_rows{store="{{StoreName}}"} {{Rows}}"""));
        Assert.That(text, Does.Contain("service_name=\"onnx-attribution-server\""), "target_info names the server");
    }

    private static string AttributePath => $"/stores/{StoreName}/attribute?top=3";

    /// <summary>A grey 32×32 PNG, its header changed (CRC fixed) to declare <paramref name="width"/>×<paramref name="height"/> when <paramref name="patch"/>.</summary>
    private byte[] PngDeclaring(int width, int height, bool patch = true)
    {
        var path = Path.Combine(_store.Root, $"grey-{Guid.NewGuid():N}.png");
        PngImage.Write(path, new float[32 * 32], 1, 32, 32);
        var bytes = File.ReadAllBytes(path);
        if (patch)
        {
            // Signature (8), IHDR length (4), "IHDR" (4), width (4), height (4), …; the CRC covers type and data (17 bytes).
            BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(16), width);
            BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(20), height);
            BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(29), System.IO.Hashing.Crc32.HashToUInt32(bytes.AsSpan(12, 17)));
        }
        return bytes;
    }
}
