using System.Text.Json;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Training.Tests.Support;

namespace OnnxAttribution.Training.Tests;

/// <summary>The training recipe: retrained models use the reference's schedule; recorded recipes stay comparable.</summary>
public sealed class TrainingRecipeTests
{
    [Test]
    public void Options_UseTheRecipesSchedule_LinearByDefault()
    {
        var data = TinyAttributionModel.EmbeddedRows(4);
        var cosine = new ScheduleSettings(ScheduleKind.Cosine, 1000);
        Assert.That(new TrainingRecipe { Schedule = cosine }.Options(data, null, 1, null).Recipe.ScheduleOrDefault, Is.EqualTo(cosine));
        Assert.That(new TrainingRecipe().Options(data, null, 1, null).Recipe.ScheduleOrDefault, Is.EqualTo(TrainingRecipe.DefaultSchedule));
    }

    [Test]
    public void RecordedRecipe_LeavesOutADefaultScheduleAndProgress_RecordsAnotherSchedule()
    {
        var plain = JsonSerializer.Serialize(new TrainingRecipe(), ModelMetadata.JsonOptions);
        Assert.That(plain, Does.Not.Contain("schedule").And.Not.Contain("progressEvery").And.Not.Contain("warmupSteps").And.Not.Contain("gradientClipNorm"));
        var cosine = JsonSerializer.Serialize(new TrainingRecipe { Schedule = new ScheduleSettings(ScheduleKind.Cosine, 1000) }, ModelMetadata.JsonOptions);
        Assert.That(cosine, Does.Contain("\"schedule\"").And.Contain("cosine"));
    }

    [Test]
    public void RecordedRecipe_WithoutTheLaterSettings_ReadsBackAsTheDefaults()
    {
        // A settings.json recipe written before warm-up and clipping were part of the recipe.
        const string old = "{\"steps\":1500,\"batchSize\":32,\"learningRate\":0.002,\"emaDecay\":0.995,\"baseChannels\":16,\"checkpointEvery\":250,\"keepCheckpointsEvery\":0,\"threads\":0}";
        var recipe = JsonSerializer.Deserialize<TrainingRecipe>(old, ModelMetadata.JsonOptions)!;
        Assert.That(recipe, Is.EqualTo(new TrainingRecipe()));
        Assert.That((recipe.WarmupStepsOrDefault, recipe.GradientClipNormOrDefault), Is.EqualTo((200, 1.0)));
        var set = new TrainingRecipe { WarmupSteps = 0, GradientClipNorm = 0 };
        Assert.That((set.WarmupStepsOrDefault, set.GradientClipNormOrDefault), Is.EqualTo((0, 0.0)), "0 is a setting, not the default");
        Assert.That(JsonSerializer.Serialize(set, ModelMetadata.JsonOptions), Does.Contain("\"warmupSteps\": 0"));
    }
}
