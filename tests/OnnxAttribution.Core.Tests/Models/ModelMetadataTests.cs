using System.Text.Json.Nodes;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;

namespace OnnxAttribution.Core.Tests.Models;

/// <summary>model.json values that would give wrong results are refused, naming the field.</summary>
public sealed class ModelMetadataTests : TempDirectoryTest
{
    private string WriteModelJson(Action<JsonObject> change)
    {
        var meta = new ModelMetadata { Name = "m", ImageSize = 16, Channels = 1, Schedule = new ScheduleSettings(ScheduleKind.Linear, 1000) };
        var json = JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(meta, ModelMetadata.JsonOptions))!.AsObject();
        change(json);
        var path = Path.Combine(TempDir, "model.json");
        File.WriteAllText(path, json.ToJsonString());
        return path;
    }

    [Test]
    public void Load_ValidFile_Reads()
    {
        var path = WriteModelJson(_ => { });

        Assert.That(ModelMetadata.Load(path).Schedule.Timesteps, Is.EqualTo(1000));
    }

    [TestCase("timesteps", 0, "schedule.timesteps")]
    [TestCase("timesteps", -5, "schedule.timesteps")]
    [TestCase("betaEnd", 2.0, "schedule.betaEnd")]
    [TestCase("betaEnd", 1.0, "schedule.betaEnd")]
    [TestCase("betaStart", 0.0, "schedule.betaStart")]
    [TestCase("betaStart", -0.1, "schedule.betaStart")]
    public void Load_ImpossibleSchedule_RefusedNamingTheField(string field, double value, string named)
    {
        var path = WriteModelJson(j => j["schedule"]![field] = field == "timesteps" ? JsonValue.Create((int)value) : JsonValue.Create(value));

        var e = Assert.Throws<ModelFileException>(() => ModelMetadata.Load(path));

        Assert.That(e!.Message, Does.Contain(path).And.Contain($"'{named}'"));
    }

    [Test]
    public void Load_NoSchedule_RefusedNamingTheField()
    {
        var path = WriteModelJson(j => j["schedule"] = null);

        Assert.That(() => ModelMetadata.Load(path), Throws.TypeOf<ModelFileException>().With.Message.Contains("'schedule'"));
    }

    [TestCase(0)]
    [TestCase(1001)]
    public void Evenly_MoreTimestepsThanTheSchedule_UserInputNamingTheRange(int count)
    {
        Assert.That(() => FeaturizationPlan.Evenly(1000, count), Throws.TypeOf<UserInputException>().With.Message.Contains($"timesteps {count}").And.Message.Contains("1 to 1000"));
    }
}
