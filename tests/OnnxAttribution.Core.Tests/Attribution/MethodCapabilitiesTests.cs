using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests.Attribution;

/// <summary>
/// What each method declares it can do, and that the places which used to compare method names now follow the
/// declarations: the fast query setting, updates in place, the dense-only projector, checkpoints, an ensemble's own models.
/// </summary>
[TestFixture]
public sealed class MethodCapabilitiesTests
{
    private static IEnumerable<string> With(Func<MethodCapabilities, bool> capability) =>
        AttributionMethods.All.Where(m => capability(m.Capabilities)).Select(m => m.Name);

    [Test]
    public void Declarations_AreTheMethodsTheDocsName()
    {
        Assert.That(With(c => c.QueryTimesteps), Is.EqualTo(new[] { "trak", "d-trak", "das" }));
        Assert.That(With(c => c.Updatable), Is.EqualTo(new[] { "trak", "d-trak" }));
        Assert.That(With(c => c.DenseProjectorOnly), Is.EqualTo(new[] { "das" }));
        Assert.That(With(c => c.NeedsCheckpoints), Is.EqualTo(new[] { "tracin", "retrac" }));
        Assert.That(With(c => c.OwnModels), Is.EqualTo(new[] { "ensemble" }));
        Assert.That(With(c => c.ConditionalModels), Is.EqualTo(AttributionMethods.All.Select(m => m.Name)));
        Assert.That(AttributionMethods.QueryTimestepMethods, Is.EqualTo(With(c => c.QueryTimesteps)));
        Assert.That(AttributionMethods.UpdatableMethods, Is.EqualTo(With(c => c.Updatable)));
    }

    [Test]
    public void Declarations_AgreeWithTheSettingsEachMethodReads()
    {
        foreach (var method in AttributionMethods.All)
        {
            Assert.That(method.Capabilities.NeedsCheckpoints, Is.EqualTo(method.SettingsUsed.Contains(nameof(MethodSettings.Checkpoints))), method.Name);
            if (method.Capabilities.QueryTimesteps || method.Capabilities.DenseProjectorOnly)
            {
                Assert.That(method.SettingsUsed, Does.Contain(nameof(MethodSettings.Timesteps)).And.Contain(nameof(MethodSettings.Projector)), method.Name);
            }
        }
    }

    [Test]
    public void CheckProjector_FollowsDenseProjectorOnly()
    {
        Assert.That(() => AttributionMethods.CheckProjector(AttributionMethods.Find("das"), ProjectorKind.Factored),
            Throws.TypeOf<SettingException>().With.Message.Contains("das normalises each timestep's whole gradient"));
        Assert.That(() => AttributionMethods.CheckProjector(AttributionMethods.Find("das"), ProjectorKind.Dense), Throws.Nothing);
        Assert.That(() => AttributionMethods.CheckProjector(AttributionMethods.Find("d-trak"), ProjectorKind.Factored), Throws.Nothing);
    }

    [Test]
    public void Open_QueryTimestepsForAMethodWithoutThem_RefusedListingThoseThatHaveThem()
    {
        // The refusal comes before the store is read: any folder with a method.json of that method will do.
        var dir = Directory.CreateTempSubdirectory("oa-capabilities-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, StoreFiles.Method), """{"method":"pixel","settings":{}}""");
            Assert.That(() => AttributionMethods.Open(dir, dir, SessionSettings.Default with { QueryTimesteps = 1 }),
                Throws.TypeOf<UserInputException>().With.Message.Contains("method pixel").And.Message.Contains("trak, d-trak, das"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
