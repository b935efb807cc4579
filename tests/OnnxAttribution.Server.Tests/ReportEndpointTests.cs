using System.Net;
using System.Net.Http.Headers;
using System.Text.RegularExpressions;
using OnnxAttribution.Imaging;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;
using OnnxAttribution.Server.Tests.Support;

namespace OnnxAttribution.Server.Tests;

/// <summary>The audit report over HTTP, the row images and the /ui page's files, on the real server with an API key.</summary>
[TestFixture]
public sealed partial class ReportEndpointTests
{
    private const string Key = "report-test-key-0123456789";
    private const int Rows = 16;

    private TemporaryStore _store = null!;
    private RunningServer _server = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        _store = new TemporaryStore("oa-server-report-", Rows, 32);
        _server = await RunningServer.StartAsync(new ServerOptions([new StoreSpec("s", _store.Directory)], null, "", SessionSettings.Default)
        {
            Access = new AccessOptions { ApiKeys = [Key] },
            Limits = new ServerLimits { MaxWait = TimeSpan.FromMinutes(1) },
        });
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
        _store?.Dispose();
    }

    [Test]
    public async Task GetReport_Seed_SelfContainedHtmlWithTopRowsPngsModelHashAndTrust()
    {
        using var response = await Send(HttpMethod.Get, "/stores/s/report?seed=3&top=4");

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("text/html"));
        string html = await response.Content.ReadAsStringAsync();
        string fingerprint = StoreMeta.Load(Path.Combine(_store.Directory, StoreFiles.Meta)).ModelFingerprint;
        Assert.That(Regex.Matches(html, "<tr class=\"result\">").Count, Is.EqualTo(4));
        Assert.That(Regex.Matches(html, "src=\"data:image/png;base64,").Count, Is.EqualTo(5), "the query and 4 training images, inlined");
        Assert.That(html, Does.Contain(fingerprint).And.Contain("trust: z, percentile").And.Contain("th percentile: "));
        Assert.That(html, Does.Contain("seed 3").And.Contain("version 2 (").And.Contain("/stores/s/report?seed=3&amp;top=4"));
        Assert.That(Regex.IsMatch(html, "(src|href)=\"(https?:)?//"), Is.False);
    }

    [Test]
    public async Task PostReport_Png_NamesTheUploadEscaped()
    {
        var png = PngImage.Encode(SmallStore.Data(Rows).Image(2), 1, 16, 16);
        using var response = await Send(HttpMethod.Post, "/stores/s/report?top=3&name=%3Cb%3Eshirt.png", new ByteArrayContent(png), "image/png");

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        string html = await response.Content.ReadAsStringAsync();
        Assert.That(html, Does.Contain("given image &#39;&lt;b&gt;shirt.png&#39;").And.Not.Contain("<b>shirt"));
        Assert.That(Regex.Matches(html, "<tr class=\"result\">").Count, Is.EqualTo(3));
        Assert.That(Regex.Match(html, "<tr class=\"result\"><td class=\"num\">1</td>.*?<td class=\"num\">(\\d+)</td>").Groups[1].Value, Is.EqualTo("2"),
            "a training image ranks its own row first");
    }

    [TestCase("/stores/s/report?seed=abc", HttpStatusCode.BadRequest, "query parameter 'seed' is 'abc'")]
    [TestCase("/stores/s/report", HttpStatusCode.BadRequest, "query parameter 'seed' is '(missing)'")]
    [TestCase("/stores/s/report?seed=1&top=0", HttpStatusCode.BadRequest, "'top'")]
    [TestCase("/stores/s/report?seed=1&steps=5000", HttpStatusCode.BadRequest, "field 'steps' is 5000")]
    [TestCase("/stores/nope/report?seed=1", HttpStatusCode.NotFound, "no store named 'nope'")]
    [TestCase("/stores/s/rows/16.png", HttpStatusCode.NotFound, "store 's' has no row '16'; its rows are 0..15")]
    [TestCase("/stores/s/rows/-1.png", HttpStatusCode.NotFound, "has no row '-1'")]
    public async Task Get_BadInput_4xxNamingIt(string path, HttpStatusCode status, string message)
    {
        using var response = await Send(HttpMethod.Get, path);

        Assert.That(response.StatusCode, Is.EqualTo(status));
        Assert.That(await Responses.Error(response), Does.Contain(message));
    }

    [Test]
    public async Task PostReport_NotAPng_400FromTheImageReader()
    {
        using var response = await Send(HttpMethod.Post, "/stores/s/report", new ByteArrayContent("text"u8.ToArray()), "image/png");

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await Responses.Error(response), Does.Contain("request body (image/png)"));
    }

    [TestCase("/stores/s/report?seed=1")]
    [TestCase("/stores/s/rows/0.png")]
    [TestCase("/stores/s/rows/0")]
    [TestCase("/stores/s/query.png?seed=1")]
    public async Task Endpoint_WithoutTheKey_401(string path)
    {
        using var response = await _server.Http.GetAsync(path);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That(await Responses.Error(response), Does.Contain("API key is required"));
    }

    [Test]
    public async Task RowPng_AndRow_TheTrainingImageAndItsLabel()
    {
        var data = SmallStore.Data(Rows);
        using var png = await Send(HttpMethod.Get, "/stores/s/rows/5.png");
        using var row = await Send(HttpMethod.Get, "/stores/s/rows/5");

        Assert.That(png.Content.Headers.ContentType?.MediaType, Is.EqualTo("image/png"));
        var (pixels, _, _, _) = PngImage.Read(await png.Content.ReadAsByteArrayAsync(), "answer", 1, 16);
        Assert.That(pixels, Is.EqualTo(data.Image(5).ToArray()).Within(1f / 127.5f));
        Assert.That(await row.Content.ReadAsStringAsync(), Is.EqualTo($"{{\"store\":\"s\",\"row\":5,\"label\":{data.Labels![5]}}}"));
    }

    [TestCase("/ui", "text/html", "<title>OnnxAttribution: auditor's page</title>")]
    [TestCase("/ui/app.js", "text/javascript", "X-Api-Key")]
    [TestCase("/ui/app.css", "text/css", "pixelated")]
    public async Task UiFiles_ServedWithoutAKey_NoExternalAssets(string path, string type, string content)
    {
        using var response = await _server.Http.GetAsync(path);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo(type));
        string text = await response.Content.ReadAsStringAsync();
        Assert.That(text, Does.Contain(content).And.Not.Contain("http://").And.Not.Contain("https://"));
    }

    private async Task<HttpResponseMessage> Send(HttpMethod method, string path, HttpContent? body = null, string? type = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body };
        request.Headers.TryAddWithoutValidation("X-Api-Key", Key);
        if (body is not null && type is not null)
        {
            body.Headers.ContentType = new MediaTypeHeaderValue(type);
        }
        return await _server.Http.SendAsync(request);
    }
}
