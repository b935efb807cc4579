using System.Net.Http.Json;
using System.Net;

using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Server.Tests.Support;

namespace OnnxAttribution.Server.Tests;

/// <summary>
/// One server with stores of other methods than D-TRAK (TRAK with the factored projection computed inside the gradient
/// graph; K-FAC, whose queries project the raw factors): each answers over HTTP as its scorer does directly.
/// </summary>
[TestFixture]
public sealed class ServerMethodsTests
{
    private const int Rows = 32;

    private string _dir = "";
    private string _model = "";
    private ImageDataset _data = null!;
    private RunningServer _server = null!;
    private readonly Dictionary<string, string> _stores = [];

    [OneTimeSetUp]
    public async Task StartServer()
    {
        _dir = Directory.CreateTempSubdirectory("oa-server-methods-").FullName;
        _model = Path.Combine(Repository.Root, "models", "fm16");
        var subset = $"0:{Rows}";
        _data = new DatasetLocator().Load("embedded", subset, 16);
        foreach (var method in new[] { "trak", "kfac" })
        {
            var store = Path.Combine(_dir, method);
            AttributionMethods.Find(method).Build(new MethodBuildRequest
            {
                ModelDirectory = _model,
                Data = _data,
                Source = new StoreSource(_model, "embedded", subset, 16),
                OutDirectory = store,
                Settings = new MethodSettings { Timesteps = 2, Dim = 1024, Projector = ProjectorKind.Factored },
            });
            _stores[method] = store;
        }
        _server = await RunningServer.StartAsync([.. _stores.Select(s => new StoreSpec(s.Key, s.Value))]);
    }

    [OneTimeTearDown]
    public async Task StopServer()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
        Directory.Delete(_dir, recursive: true);
    }

    [TestCase("trak", true)]
    [TestCase("kfac", false)]
    public async Task Attribute_TrainingImage_SameRankingAndScoresAsTheScorer(string method, bool ranksItselfFirst)
    {
        int[] rows = [3, 20];
        using var response = await _server.Http.PostAsJsonAsync($"/stores/{method}/attribute?top=5", new { images = rows.Select(r => _data.Image(r).ToArray()).ToArray() });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        var body = (await response.Content.ReadFromJsonAsync<AttributeResponse>())!;
        Assert.That(body.Method, Is.EqualTo(method));
        using var scorer = AttributionMethods.Open(_stores[method], _model);
        for (int q = 0; q < rows.Length; q++)
        {
            var direct = scorer.Scores([new AttributionQuery("direct", _data.Image(rows[q]).ToArray())]);
            var expected = TopKSelection.Select(direct, 5);
            var got = body.Rankings[q].Top;
            Assert.That(got.Select(r => r.Index), Is.EqualTo(expected.Indices), $"query {q}");
            Assert.That(got.Select(r => r.Score), Is.EqualTo(got.Select(r => direct[r.Index])).Within(1e-5 * direct.Max(Math.Abs)), $"query {q}");
            if (ranksItselfFirst)
            {
                // k = 1024 factored features for 32 rows: TRAK's kernel gives each training image a direction of its own.
                // (K-FAC on this trained model does not put row 3 first; for it only the agreement with the scorer is checked.)
                Assert.That(got[0].Index, Is.EqualTo(rows[q]), $"query {q}: a training image ranks its own row first");
            }
        }
    }
}
