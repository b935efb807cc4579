using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Store;

namespace OnnxAttribution.Runtime.Tests.Attribution;

public sealed class ProjectionSettingsTests
{
    [TestCase(ProjectorKind.Dense, ProjectionKind.Rademacher, 4096, 4096)]
    [TestCase(ProjectorKind.Dense, ProjectionKind.Gaussian, 2048, 2048)]
    [TestCase(ProjectorKind.Factored, ProjectionKind.Rademacher, 4096, 3969)]   // layers × side² ≤ the k asked for
    public void ToSpec_ThenFromSpec_GivesTheSettingsBack_InTheMetaJsonFormat(ProjectorKind kind, ProjectionKind distribution, int dim, int produced)
    {
        var settings = new ProjectionSettings(kind, distribution, dim, Seed: 42);

        var spec = settings.ToSpec(produced);

        Assert.That((spec.Kind, spec.Seed, spec.Dim), Is.EqualTo((kind == ProjectorKind.Dense ? "dense" : "factored", 42L, produced)));
        Assert.That(spec.Settings, Is.EquivalentTo(new Dictionary<string, string>
        {
            ["distribution"] = distribution == ProjectionKind.Gaussian ? "gaussian" : "rademacher",
            ["requestedDim"] = dim.ToString(System.Globalization.CultureInfo.InvariantCulture),
        }));
        Assert.That(ProjectionSettings.FromSpec(spec), Is.EqualTo(settings));
    }

    [Test]
    public void FromSpec_StoreFromBeforeTheSettings_ReadsTheOldDefaults()
    {
        var settings = ProjectionSettings.FromSpec(new ProjectorSpec("dense", 7, 512));

        Assert.That(settings, Is.EqualTo(new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, 512, 7)));
    }

    [TestCase("kind", "sparse", "'projector.kind' is 'sparse'")]
    [TestCase("distribution", "uniform", "'projector.settings.distribution' is 'uniform'")]   // was read as rademacher before
    [TestCase("requestedDim", "4k", "'projector.settings.requestedDim' is '4k'")]               // was a FormatException
    [TestCase("requestedDim", "0", "'projector.settings.requestedDim' is '0'")]
    public void FromSpec_UnknownValue_RefusedNamingTheField(string field, string value, string expected)
    {
        var spec = new ProjectorSpec(field == "kind" ? value : "dense", 1, 64)
        {
            Settings = field == "kind" ? new SortedDictionary<string, string>() : new SortedDictionary<string, string> { [field] = value },
        };

        var e = Assert.Throws<AttributionException>(() => ProjectionSettings.FromSpec(spec))!;

        Assert.That(e.Message, Does.StartWith("meta.json: field ").And.Contain(expected));
    }
}
