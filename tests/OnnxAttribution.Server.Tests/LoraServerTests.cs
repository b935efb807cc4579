using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Store;
using OnnxAttribution.Onnx;
using OnnxAttribution.Server.Tests.Support;
using OnnxAttribution.Training;

namespace OnnxAttribution.Server.Tests;

/// <summary>A store of a LoRA fine-tune served over HTTP: /stores names its base by fingerprint, and answers are the scorer's
/// (the adapters' gradients).</summary>
[TestFixture]
public sealed class LoraServerTests
{
    private string _dir = "";
    private string _base = "";
    private string _model = "";
    private string _store = "";
    private ImageDataset _data = null!;
    private RunningServer _server = null!;

    [OneTimeSetUp]
    public async Task StartServer()
    {
        _dir = Directory.CreateTempSubdirectory("oa-server-lora-").FullName;
        (_base, _model) = (Path.Combine(_dir, "base"), Path.Combine(_dir, "lora"));
        var config = new UNetConfig { BaseChannels = 8, Groups = 4, TimeEmbeddingDim = 32, SinusoidDim = 16 };
        using (var net = new UNet(config, seed: 4))
        {
            OnnxExporter.Export(net, new ScheduleSettings(ScheduleKind.Linear, 1000), null, _base, "base");
        }
        var settings = new LoraSettings { Rank = 2, Targets = LoraTargets.All };
        using (var baseNet = UNet.FromModelDirectory(_base))
        using (var lora = new UNet(LoraBase.ConfigOf(_base, settings), seed: 5))
        {
            lora.LoadBaseWeights(baseNet.GetWeights(), _base);
            var parameters = lora.ParameterInfos();
            OnnxExporter.Export(lora, new ScheduleSettings(ScheduleKind.Linear, 1000), null, _model, "lora",
                (forward, dir) => OnnxModelFile.Save(ModelExport.BuildVjp(forward, parameters), Path.Combine(dir, "vjp.onnx")),
                lora: LoraBase.Spec(_base, LoraBase.Sha256(_base), settings));
        }
        _data = new DatasetLocator().Load("embedded", "0:20", 16);
        _store = Path.Combine(_dir, "store");
        AttributionMethods.Find("trak").Build(new MethodBuildRequest
        {
            ModelDirectory = _model,
            Data = _data,
            Source = new StoreSource(_model, "embedded", "0:20", 16),
            OutDirectory = _store,
            Settings = new MethodSettings { Timesteps = 2, Dim = 32 },
        });
        _server = await RunningServer.StartAsync([new StoreSpec("l", _store)]);
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
    public async Task Stores_NamesTheBase_AndAnswersAreTheScorersOverTheAdaptersGradients()
    {
        var info = JsonNode.Parse(await _server.Http.GetStringAsync("/stores"))!["stores"]![0]!;
        Assert.That(info["loraBaseSha256"]!.GetValue<string>(), Is.EqualTo(StoreMeta.FingerprintFile(Path.Combine(_base, "forward.onnx"))));

        using var response = await _server.Http.PostAsJsonAsync("/stores/l/attribute?top=4", new { images = new[] { _data.Image(3).ToArray() } });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        var rows = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["rankings"]![0]!["top"]!.AsArray()
            .Select(r => r!["index"]!.GetValue<long>()).ToArray();
        using var scorer = AttributionMethods.Open(_store, _model);
        var expected = scorer.TopK([new AttributionQuery("row 3", _data.Image(3).ToArray())], 4)[0].Indices;
        Assert.That(rows, Is.EqualTo(expected));
    }
}
