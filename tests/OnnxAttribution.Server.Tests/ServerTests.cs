using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Imaging;
using OnnxAttribution.Runtime;
using OnnxAttribution.Runtime.Sampling;

using OnnxAttribution.Server.Tests.Support;

namespace OnnxAttribution.Server.Tests;

/// <summary>
/// The real server (Kestrel on a free loopback port) against a small D-TRAK store of the shipped model, built once;
/// answers are checked against the store's scorer opened directly.
/// </summary>
[TestFixture]
public sealed class ServerTests
{
    private const string StoreName = "small";
    private const int Rows = 48;

    private string _dir = "";
    private string _model = "";
    private ImageDataset _data = null!;
    private RunningServer _server = null!;
    private IAttributionScorer _scorer = null!;

    [OneTimeSetUp]
    public async Task StartServer()
    {
        _dir = Directory.CreateTempSubdirectory("oa-server-").FullName;
        _model = SmallStore.Model;
        _data = SmallStore.Data(Rows);
        // k > N: every training row has a direction of its own, so a training image ranks its own row first.
        var store = SmallStore.BuildDtrak(Path.Combine(_dir, "dtrak"), Rows, 512);
        // Eight requests at once are batched here, not refused: a minute's work may wait (the default, 200 ms, sheds load).
        _server = await RunningServer.StartAsync(new ServerOptions([new StoreSpec(StoreName, store)], null, "", SessionSettings.Default)
        {
            Limits = new ServerLimits { MaxWait = TimeSpan.FromMinutes(1) },
        });
        _scorer = AttributionMethods.Open(store, _model);
    }

    [OneTimeTearDown]
    public async Task StopServer()
    {
        _scorer?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
        Directory.Delete(_dir, recursive: true);
    }

    [Test]
    public async Task Healthz_Running_SaysOk()
    {
        var health = await _server.Http.GetFromJsonAsync<HealthResponse>("/healthz");
        Assert.That(health!.Status, Is.EqualTo("ok"));
    }

    [Test]
    public async Task Stores_OneStore_ListsItsMethodRowsAndGeometry()
    {
        var stores = (await _server.Http.GetFromJsonAsync<StoresResponse>("/stores"))!.Stores;
        Assert.That(stores, Has.Count.EqualTo(1));
        var s = stores[0];
        Assert.That((s.Name, s.Method, s.Rows, s.Dim, s.Model, s.Channels, s.ImageSize), Is.EqualTo((StoreName, "d-trak", (long)Rows, (int?)512, "fm16", 1, 16)));
    }

    [Test]
    public async Task Stores_Listed_NoFilesystemPaths()
    {
        string json = await _server.Http.GetStringAsync("/stores");
        Assert.That(json, Does.Not.Contain(_dir).And.Not.Contain(Repository.Root).And.Not.Contain("/"));
    }

    [Test]
    public async Task Attribute_TrainingImageAsFloats_RanksItsOwnRowFirstWithTheScorersScores()
    {
        const int row = 17;
        var response = await Attribute(new { images = new[] { Image(row) } }, top: 5);

        var ranking = response.Rankings.Single().Top;
        Assert.That(ranking[0].Index, Is.EqualTo(row));
        var direct = _scorer.Scores([new AttributionQuery("direct", Image(row))]);
        var expected = TopKSelection.Select(direct, 5);
        Assert.That(ranking.Select(r => r.Index), Is.EqualTo(expected.Indices));
        Assert.That(ranking.Select(r => r.Score), Is.EqualTo(ranking.Select(r => direct[r.Index])).Within(Tolerance(direct)));
        Assert.That(response.Method, Is.EqualTo("d-trak"));
        Assert.That(response.Store, Is.EqualTo(StoreName));
    }

    [Test]
    public async Task Attribute_SamePngAsBase64AndAsRawBody_SameRanking()
    {
        const int row = 9;
        var png = Path.Combine(_dir, "query.png");
        PngImage.Write(png, Image(row), 1, 16, 16);
        var bytes = await File.ReadAllBytesAsync(png);

        var asJson = await Attribute(new { png = Convert.ToBase64String(bytes) }, top: 8);
        using var raw = new ByteArrayContent(bytes);
        raw.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        using var posted = await _server.Http.PostAsync(AttributePath(8), raw);
        var asBody = await Read(posted);

        var a = asJson.Rankings.Single().Top;
        var b = asBody.Rankings.Single().Top;
        Assert.That(b.Select(r => r.Index), Is.EqualTo(a.Select(r => r.Index)));
        Assert.That(b.Select(r => r.Score), Is.EqualTo(a.Select(r => r.Score)));
        Assert.That(a[0].Index, Is.EqualTo(row), "an 8-bit training image survives the PNG round trip exactly");
    }

    [Test]
    public async Task Attribute_Seeds_SameTopRowsAsGeneratedQueriesScoredDirectly()
    {
        var response = await Attribute(new { seeds = new long[] { 7, 8 }, sampler = "ddim", steps = 10 }, top: 6);

        var queries = GeneratedQueries.Generate(ModelDirectory.Open(_model), [7, 8], SamplerKind.Ddim, 10, SessionSettings.Default);
        var direct = _scorer.Scores(queries);
        Assert.That(response.Rankings.Select(q => q.Query), Is.EqualTo(new[] { "seed 7", "seed 8" }));
        for (int q = 0; q < 2; q++)
        {
            var scores = direct.AsSpan(q * Rows, Rows).ToArray();
            var got = response.Rankings[q].Top;
            Assert.That(got.Select(r => r.Index), Is.EqualTo(TopKSelection.Select(scores, 6).Indices), $"seed {7 + q}");
            Assert.That(got.Select(r => r.Score), Is.EqualTo(got.Select(r => scores[r.Index])).Within(Tolerance(scores)));
        }
        Assert.That(response.Timings.GenerateMs, Is.GreaterThan(0));
        // Where the scorer's time went: the engine's query stages, which together take no more than the scorer call.
        var stages = response.Timings.StagesMs;
        Assert.That(stages.Keys, Is.EquivalentTo(new[] { "features", "solve", "scan" }));
        Assert.That(stages.Values, Has.All.GreaterThanOrEqualTo(0));
        Assert.That(stages["features"], Is.GreaterThan(0), "two queries' gradient passes take time");
        Assert.That(stages.Values.Sum(), Is.LessThanOrEqualTo(response.Timings.ScoreMs + 0.05));
    }

    [Test]
    public async Task Attribute_SeveralImagesInOneRequest_SameAsOneRequestEach()
    {
        int[] rows = [3, 30, 44];
        var together = await Attribute(new { images = rows.Select(Image).ToArray() }, top: 4);

        Assert.That(together.Rankings.Select(q => q.Query), Is.EqualTo(new[] { "images[0]", "images[1]", "images[2]" }));
        for (int i = 0; i < rows.Length; i++)
        {
            var alone = (await Attribute(new { images = new[] { Image(rows[i]) } }, top: 4)).Rankings.Single().Top;
            var batched = together.Rankings[i].Top;
            Assert.That(batched.Select(r => r.Index), Is.EqualTo(alone.Select(r => r.Index)), $"row {rows[i]}");
            Assert.That(batched.Select(r => r.Score), Is.EqualTo(alone.Select(r => r.Score)), "the same bits, batched or alone");
        }
    }

    [Test]
    public async Task Attribute_EightRequestsAtOnce_SameAsOneAfterAnotherAndBatched()
    {
        // The worker takes every request queued while it scores the first into one batch: the scores must not change.
        var rows = Enumerable.Range(0, 8).Select(i => i * 5).ToArray();
        var sequential = new List<AttributeResponse>();
        foreach (var row in rows)
        {
            sequential.Add(await Attribute(new { images = new[] { Image(row) } }, top: 5));
        }

        var parallel = await Task.WhenAll(rows.Select(row => Attribute(new { images = new[] { Image(row) } }, top: 5)));

        for (int i = 0; i < rows.Length; i++)
        {
            var s = sequential[i].Rankings.Single().Top;
            var p = parallel[i].Rankings.Single().Top;
            Assert.That(p.Select(r => r.Index), Is.EqualTo(s.Select(r => r.Index)), $"row {rows[i]}");
            Assert.That(p.Select(r => r.Score), Is.EqualTo(s.Select(r => r.Score)), $"row {rows[i]}");
        }
        Assert.That(sequential.Select(r => r.Timings.BatchedRequests), Has.All.EqualTo(1));
        var sizes = parallel.Select(r => r.Timings.BatchedRequests).ToList();
        TestContext.Out.WriteLine($"batch sizes seen by the 8 concurrent requests: {string.Join(" ", sizes)}");
        Assert.That(sizes.Max(), Is.GreaterThan(1), "requests that arrived together were scored one by one");
        foreach (var size in sizes.Distinct())
        {
            Assert.That(sizes.Count(b => b == size) % size, Is.Zero, $"{sizes.Count(b => b == size)} requests report a batch of {size}");
        }
    }

    [Test]
    public async Task Attribute_UnknownStore_404NamingIt()
    {
        using var response = await _server.Http.PostAsJsonAsync("/stores/nope/attribute", new { seeds = new[] { 1 } });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(await Responses.Error(response), Does.Contain("'nope'").And.Contain(StoreName));
    }

    [Test]
    public async Task Attribute_WrongImageLength_400NamingTheExpectedLength()
    {
        using var response = await _server.Http.PostAsJsonAsync(AttributePath(3), new { images = new[] { Image(0), new float[255] } });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await Responses.Error(response), Does.Contain("images[1]").And.Contain("255").And.Contain("1×16×16 = 256"));
    }

    [Test]
    public async Task Attribute_BadBase64_400NamingPng()
    {
        using var response = await _server.Http.PostAsJsonAsync(AttributePath(3), new { png = "not base64!" });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await Responses.Error(response), Does.Contain("'png'").And.Contain("base64"));
    }

    [Test]
    public async Task Attribute_Base64OfSomethingElse_400SayingItIsNoImage()
    {
        using var response = await _server.Http.PostAsJsonAsync(AttributePath(3), new { png = Convert.ToBase64String("hello"u8.ToArray()) });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await Responses.Error(response), Does.Contain("'png'").And.Contain("not a readable image"));
    }

    [TestCase("0")]
    [TestCase("-2")]
    [TestCase("ten")]
    public async Task Attribute_TopNotAWholeNumberAboveZero_400NamingTop(string top)
    {
        using var response = await _server.Http.PostAsJsonAsync($"/stores/{StoreName}/attribute?top={top}", new { seeds = new[] { 1 } });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await Responses.Error(response), Does.Contain("'top'").And.Contain($"'{top}'"));
    }

    [TestCase("{}", "got none")]
    [TestCase("""{"seeds":[1],"png":"AAAA"}""", "'png' and 'seeds'")]
    [TestCase("""{"images":[[0.5]],"steps":3}""", "'steps' goes with 'seeds'")]
    [TestCase("""{"image":[[0.5]]}""", "unknown field 'image'")]
    [TestCase("""{"seeds":["seven"]}""", "$.seeds[0]: a value of the wrong type")]
    [TestCase("""{"images":{"a":1}}""", "$.images: a value of the wrong type")]
    [TestCase("""[1, 2]""", "$: a value of the wrong type")]
    [TestCase("""{"seeds":[1]""", "not valid JSON")]
    [TestCase("""{"seeds":[1],"sampler":"euler"}""", "'sampler' is 'euler'")]
    [TestCase("""{"seeds":[1],"steps":0}""", "'steps' is 0")]
    [TestCase("""{"seeds":[]}""", "'seeds' has 0 entries")]
    public async Task Attribute_MalformedJson_400NamingTheField(string body, string expected)
    {
        using var content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        using var response = await _server.Http.PostAsync(AttributePath(3), content);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await Responses.Error(response), Does.Contain(expected).And.Not.Contain("System.").And.Not.Contain(".NET").And.Not.Contain("OnnxAttribution"));
    }

    [Test]
    public async Task Attribute_TextBody_415NamingTheContentTypes()
    {
        using var content = new StringContent("seed 7");
        using var response = await _server.Http.PostAsync(AttributePath(3), content);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.UnsupportedMediaType));
        Assert.That(await Responses.Error(response), Does.Contain("text/plain").And.Contain("image/png"));
    }

    private float[] Image(int row) => _data.Image(row).ToArray();

    private static string AttributePath(int top) => $"/stores/{StoreName}/attribute?top={top}";

    /// <summary>Scores agree to float32 rounding of the largest score (separate ORT sessions, same inputs).</summary>
    private static double Tolerance(float[] scores) => 1e-5 * scores.Max(Math.Abs);

    [Test]
    public async Task Attribute_Json_HasTheLibrarysRankingShape_AsTheCliAndEdgeTool()
    {
        using var response = await _server.Http.PostAsJsonAsync(AttributePath(2), new { seeds = new long[] { 7 }, steps = 4 });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        using var json = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());

        var ranking = json.RootElement.GetProperty("rankings")[0];
        Assert.That(ranking.GetProperty("query").GetString(), Is.EqualTo("seed 7"));
        var first = ranking.GetProperty("top")[0];
        Assert.That(first.EnumerateObject().Select(p => p.Name), Is.EqualTo(new[] { "rank", "index", "score" }), "label is left out where unknown");
        Assert.That(first.GetProperty("rank").GetInt32(), Is.EqualTo(1));
    }

    private async Task<AttributeResponse> Attribute(object body, int top)
    {
        using var response = await _server.Http.PostAsJsonAsync(AttributePath(top), body);
        return await Read(response);
    }

    private static async Task<AttributeResponse> Read(HttpResponseMessage response)
    {
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<AttributeResponse>())!;
    }
}

/// <summary>The repository root, recorded at build time (tests read the shipped model from the source tree).</summary>
internal static class Repository
{
    public static string Root { get; } = Path.GetFullPath(typeof(Repository).Assembly
        .GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
        .Cast<System.Reflection.AssemblyMetadataAttribute>().Single(a => a.Key == "RepositoryRoot").Value!);
}
