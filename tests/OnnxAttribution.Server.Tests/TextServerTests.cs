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
/// A store of a text-conditioned model served over HTTP: /stores gives the condition with its vocabulary; each query carries
/// its prompt (JSON 'prompt' / 'prompts', a PNG's query parameter 'prompt'); a missing, empty or unknown-word prompt, or a
/// label, is a 400 naming the field; answers are those of the scorer under the same prompt.
/// </summary>
[TestFixture]
public sealed class TextServerTests
{
    private const int Rows = 20;
    private string _dir = "";
    private string _model = "";
    private string _store = "";
    private ImageDataset _data = null!;
    private ConditionSpec _condition = null!;
    private RunningServer _server = null!;

    [OneTimeSetUp]
    public async Task StartServer()
    {
        _dir = Directory.CreateTempSubdirectory("oa-server-text-").FullName;
        _model = Path.Combine(_dir, "model");
        var config = new UNetConfig
        {
            BaseChannels = 8, Groups = 4, TimeEmbeddingDim = 32, SinusoidDim = 16,
            Text = new TextConditionSettings { ClassNames = DatasetLocator.FashionMnistClasses, Width = 16 },
        };
        using (var net = new UNet(config, seed: 4))
        {
            var parameters = net.ParameterInfos();
            OnnxExporter.Export(net, new ScheduleSettings(ScheduleKind.Linear, 1000), null, _model, "text",
                (forward, dir) => OnnxModelFile.Save(ModelExport.BuildVjp(forward, parameters), Path.Combine(dir, "vjp.onnx")));
        }
        _condition = ModelMetadata.Load(_model).Condition!;
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
        _server = await RunningServer.StartAsync([new StoreSpec("t", _store)]);
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
    public async Task Stores_SaysTheModelTakesAPromptAndItsWords()
    {
        var store = JsonNode.Parse(await _server.Http.GetStringAsync("/stores"))!["stores"]![0]!;
        Assert.That(store["condition"]!["kind"]!.GetValue<string>(), Is.EqualTo("text"));
        Assert.That(store["condition"]!["vocabulary"]!.AsArray().Select(w => w!.GetValue<string>()), Does.Contain("sneaker").And.Contain("dark"));
    }

    [Test]
    public async Task Attribute_ImagesUnderTheirPrompts_AnswersAsTheScorer()
    {
        int[] rows = [2, 15];
        string[] prompts = ["a dark sneaker", "a light bag"];
        using var response = await _server.Http.PostAsJsonAsync("/stores/t/attribute?top=5",
            new { images = rows.Select(r => _data.Image(r).ToArray()).ToArray(), prompts });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        using var scorer = AttributionMethods.Open(_store, _model);
        for (int q = 0; q < rows.Length; q++)
        {
            long packed = _condition.EncodePrompt(prompts[q], "test");
            var direct = scorer.Scores([new AttributionQuery("direct", _data.Image(rows[q]).ToArray()) { Condition = packed }]);
            var ranking = body["rankings"]![q]!;
            Assert.That(ranking["prompt"]!.GetValue<string>(), Is.EqualTo(prompts[q]));
            Assert.That(ranking["condition"]!.GetValue<long>(), Is.EqualTo(packed));
            Assert.That(ranking["top"]!.AsArray().Select(r => r!["index"]!.GetValue<long>()), Is.EqualTo(TopKSelection.Select(direct, 5).Indices), $"query {q}");
        }
    }

    [Test]
    public async Task Attribute_SeedsWithAPrompt_AndAPngWithThePromptParameter_Answer()
    {
        using var seeds = await _server.Http.PostAsJsonAsync("/stores/t/attribute", new { seeds = new[] { 3L, 4L }, steps = 3, prompt = "a dark coat", guidance = 2.0 });
        Assert.That(seeds.StatusCode, Is.EqualTo(HttpStatusCode.OK), await seeds.Content.ReadAsStringAsync());
        var rankings = JsonNode.Parse(await seeds.Content.ReadAsStringAsync())!["rankings"]!.AsArray();
        Assert.That(rankings.Select(r => r!["prompt"]!.GetValue<string>()), Is.EqualTo(new[] { "a dark coat", "a dark coat" }));

        var png = Path.Combine(_dir, "q.png");
        OnnxAttribution.Imaging.PngImage.Write(png, _data.Image(5), 1, 16, 16, 1);
        using var withPrompt = new ByteArrayContent(File.ReadAllBytes(png));
        withPrompt.Headers.ContentType = new("image/png");
        using var answered = await _server.Http.PostAsync("/stores/t/attribute?prompt=a%20light%20dress", withPrompt);
        Assert.That(answered.StatusCode, Is.EqualTo(HttpStatusCode.OK), await answered.Content.ReadAsStringAsync());
        Assert.That(JsonNode.Parse(await answered.Content.ReadAsStringAsync())!["rankings"]![0]!["prompt"]!.GetValue<string>(), Is.EqualTo("a light dress"));
        using var withoutPrompt = new ByteArrayContent(File.ReadAllBytes(png));
        withoutPrompt.Headers.ContentType = new("image/png");
        using var refused = await _server.Http.PostAsync("/stores/t/attribute", withoutPrompt);
        Assert.That(refused.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await Responses.Error(refused), Does.Contain("prompt (query parameter)"));
    }

    [Test]
    public async Task Report_SeedUnderAPrompt_SaysThePrompt()
    {
        using var response = await _server.Http.GetAsync("/stores/t/report?seed=2&steps=2&top=3&prompt=a%20dark%20coat");
        string html = await response.Content.ReadAsStringAsync();
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), html);
        Assert.That(html, Does.Contain("under the prompt <code>a dark coat</code>"));
    }

    [TestCase("""{"seeds": [1], "steps": 2}""", "field 'prompt' is required")]
    [TestCase("""{"seeds": [1], "steps": 2, "prompt": ""}""", "field 'prompt' is empty")]
    [TestCase("""{"seeds": [1], "steps": 2, "prompt": "a purple bag"}""", "the word 'purple' is not in the model's vocabulary")]
    [TestCase("""{"seeds": [1, 2], "steps": 2, "prompts": ["a bag"]}""", "field 'prompts' has 1 entries for 2 queries")]
    [TestCase("""{"seeds": [1], "steps": 2, "prompts": ["a bag bag bag bag bag"]}""", "field 'prompts[0]' has 6 words")]
    [TestCase("""{"seeds": [1], "steps": 2, "label": 3}""", "field 'label': the model of store 't' is conditioned on a prompt")]
    [TestCase("""{"seeds": [1], "steps": 2, "prompt": "a bag", "prompts": ["a bag"]}""", "not both")]
    public async Task Attribute_PromptThatDoesNotFit_Is400NamingTheField(string body, string message)
    {
        using var content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        using var response = await _server.Http.PostAsync("/stores/t/attribute", content);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(await Responses.Error(response), Does.Contain(message));
    }
}
