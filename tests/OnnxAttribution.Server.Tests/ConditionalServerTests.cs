using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Onnx;
using OnnxAttribution.Server.Tests.Support;
using OnnxAttribution.Training;

namespace OnnxAttribution.Server.Tests;

/// <summary>
/// A store of a class-conditional model served over HTTP: /stores says the condition it needs; each query carries its
/// label (JSON 'label' / 'labels', a PNG's query parameter 'label'); one without it, or with one out of range, is a 400
/// naming the field; answers are those of the scorer under the same label.
/// </summary>
[TestFixture]
public sealed class ConditionalServerTests
{
    private const int Rows = 24;
    private string _dir = "";
    private string _model = "";
    private string _store = "";
    private ImageDataset _data = null!;
    private RunningServer _server = null!;

    [OneTimeSetUp]
    public async Task StartServer()
    {
        _dir = Directory.CreateTempSubdirectory("oa-server-conditional-").FullName;
        _model = Path.Combine(_dir, "model");
        var config = new UNetConfig { BaseChannels = 8, Groups = 4, TimeEmbeddingDim = 32, SinusoidDim = 16, Classes = 10 };
        using (var net = new UNet(config, seed: 4))
        {
            var parameters = net.ParameterInfos();
            OnnxExporter.Export(net, new ScheduleSettings(ScheduleKind.Linear, 1000), null, _model, "conditional",
                (forward, dir) => OnnxModelFile.Save(ModelExport.BuildVjp(forward, parameters), Path.Combine(dir, "vjp.onnx")));
        }
        var subset = $"0:{Rows}";
        _data = new DatasetLocator().Load("embedded", subset, 16);
        _store = Path.Combine(_dir, "store");
        AttributionMethods.Find("d-trak").Build(new MethodBuildRequest
        {
            ModelDirectory = _model,
            Data = _data,
            Source = new StoreSource(_model, "embedded", subset, 16),
            OutDirectory = _store,
            Settings = new MethodSettings { Timesteps = 2, Dim = 64 },
        });
        _server = await RunningServer.StartAsync([new StoreSpec("c", _store)]);
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

    [Test]
    public async Task Stores_SaysTheConditionTheModelNeeds()
    {
        var stores = JsonNode.Parse(await _server.Http.GetStringAsync("/stores"))!["stores"]![0]!;
        Assert.That(stores["condition"]!["kind"]!.GetValue<string>(), Is.EqualTo("label"));
        Assert.That(stores["condition"]!["classes"]!.GetValue<int>(), Is.EqualTo(10));
    }

    [Test]
    public async Task Attribute_ImagesUnderTheirLabels_AnswersAsTheScorer()
    {
        int[] rows = [2, 15];
        long[] labels = rows.Select(r => (long)_data.Labels![r]).ToArray();
        using var response = await _server.Http.PostAsJsonAsync("/stores/c/attribute?top=5",
            new { images = rows.Select(r => _data.Image(r).ToArray()).ToArray(), labels });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        using var scorer = AttributionMethods.Open(_store, _model);
        for (int q = 0; q < rows.Length; q++)
        {
            var direct = scorer.Scores([new AttributionQuery("direct", _data.Image(rows[q]).ToArray()) { Condition = labels[q] }]);
            var ranking = body["rankings"]![q]!;
            Assert.That(ranking["condition"]!.GetValue<long>(), Is.EqualTo(labels[q]));
            Assert.That(ranking["top"]!.AsArray().Select(r => r!["index"]!.GetValue<long>()), Is.EqualTo(TopKSelection.Select(direct, 5).Indices), $"query {q}");
        }
    }

    [Test]
    public async Task Attribute_SeedsWithALabel_AndAPngWithTheLabelParameter_Answer()
    {
        using var seeds = await _server.Http.PostAsJsonAsync("/stores/c/attribute", new { seeds = new[] { 3L, 4L }, steps = 3, label = 7, guidance = 2.0 });
        Assert.That(seeds.StatusCode, Is.EqualTo(HttpStatusCode.OK), await seeds.Content.ReadAsStringAsync());
        var rankings = JsonNode.Parse(await seeds.Content.ReadAsStringAsync())!["rankings"]!.AsArray();
        Assert.That(rankings.Select(r => r!["condition"]!.GetValue<long>()), Is.EqualTo(new[] { 7L, 7L }));

        var png = Path.Combine(_dir, "q.png");
        OnnxAttribution.Imaging.PngImage.Write(png, _data.Image(5), 1, 16, 16, 1);
        using var withLabel = new ByteArrayContent(File.ReadAllBytes(png));
        withLabel.Headers.ContentType = new("image/png");
        using var answered = await _server.Http.PostAsync("/stores/c/attribute?label=3", withLabel);
        Assert.That(answered.StatusCode, Is.EqualTo(HttpStatusCode.OK), await answered.Content.ReadAsStringAsync());
        using var withoutLabel = new ByteArrayContent(File.ReadAllBytes(png));
        withoutLabel.Headers.ContentType = new("image/png");
        using var refused = await _server.Http.PostAsync("/stores/c/attribute", withoutLabel);
        Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await Responses.Error(refused), Does.Contain("label (query parameter)"));
    }

    [TestCase("""{"seeds": [1], "steps": 2}""", "field 'label' is required")]
    [TestCase("""{"seeds": [1], "steps": 2, "label": 10}""", "field 'label' is 10")]
    [TestCase("""{"seeds": [1, 2], "steps": 2, "labels": [1]}""", "field 'labels' has 1 entries for 2 queries")]
    [TestCase("""{"seeds": [1], "steps": 2, "labels": [-1]}""", "field 'labels[0]' is -1")]
    [TestCase("""{"seeds": [1], "steps": 2, "label": 1, "labels": [1]}""", "not both")]
    [TestCase("""{"images": [IMAGE], "label": 1, "guidance": 2}""", "'guidance' goes with 'seeds' only")]
    [TestCase("""{"seeds": [1], "steps": 2, "prompt": "a bag"}""", "field 'prompt': the model of store 'c' is conditioned on a class label")]
    public async Task Attribute_ConditionThatDoesNotFit_Is400NamingTheField(string body, string message)
    {
        string image = "[" + string.Join(",", Enumerable.Repeat("0", 256)) + "]";
        using var content = new StringContent(body.Replace("IMAGE", image, StringComparison.Ordinal), System.Text.Encoding.UTF8, "application/json");
        using var response = await _server.Http.PostAsync("/stores/c/attribute", content);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await Responses.Error(response), Does.Contain(message));
    }
}
