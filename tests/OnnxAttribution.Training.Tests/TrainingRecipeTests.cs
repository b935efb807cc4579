using System.Text.Json;
using OnnxAttribution.Core.Models;
using OnnxAttribution.Training.Evaluation;
using OnnxAttribution.Training.Tests.Support;

namespace OnnxAttribution.Training.Tests;

/// <summary>The evaluation recipe: retrained models use the reference's schedule; recorded recipes stay comparable.</summary>
public sealed class TrainingRecipeTests
{
    [Test]
    public void Options_UseTheRecipesSchedule_LinearByDefault()
    {
        var data = TinyAttributionModel.EmbeddedRows(4);
        var cosine = new ScheduleSettings(ScheduleKind.Cosine, 1000);
        Assert.That(new TrainingRecipe { Schedule = cosine }.Options(data, null, 1, null).Schedule, Is.EqualTo(cosine));
        Assert.That(new TrainingRecipe().Options(data, null, 1, null).Schedule, Is.EqualTo(TrainingRecipe.DefaultSchedule));
    }

    [Test]
    public void RecordedRecipe_LeavesOutADefaultScheduleAndProgress_RecordsAnotherSchedule()
    {
        var plain = JsonSerializer.Serialize(new TrainingRecipe(), ModelMetadata.JsonOptions);
        Assert.That(plain, Does.Not.Contain("schedule").And.Not.Contain("progressEvery"));
        var cosine = JsonSerializer.Serialize(new TrainingRecipe { Schedule = new ScheduleSettings(ScheduleKind.Cosine, 1000) }, ModelMetadata.JsonOptions);
        Assert.That(cosine, Does.Contain("\"schedule\"").And.Contain("cosine"));
    }
}
