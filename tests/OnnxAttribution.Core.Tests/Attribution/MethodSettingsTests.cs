using System.Reflection;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests.Attribution;

/// <summary>Each method declares the settings it reads; a setting changed for a method that would ignore it is refused.</summary>
public sealed class MethodSettingsTests
{
    private static readonly MethodSettings Everything = new()
    {
        Measurement = MeasurementKind.Mean,
        Timesteps = 3,
        NoiseDraws = 2,
        NoiseSeed = 5,
        Projector = ProjectorKind.Factored,
        Distribution = ProjectionKind.Gaussian,
        Dim = 64,
        ProjectionSeed = 6,
        DType = StoreDType.Float16,
        Damping = 0.5,
        BatchSize = 4,
        JourneySteps = 3,
        Checkpoints = ["a"],
        Seed = 7,
        PixelMetric = PixelMetric.L2,
    };

    private static IEnumerable<string> SettingNames() =>
        typeof(MethodSettings).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite).Select(p => p.Name);

    [Test]
    public void Changed_NamesEverySettingSetAwayFromItsDefault()
    {
        // Every settable property is set above; a property added to MethodSettings and left out of this test fails here (Changed() finds it by reflection).
        Assert.That(Everything.Changed().Select(c => c.Setting), Is.EquivalentTo(SettingNames()));
        Assert.That(new MethodSettings().Changed(), Is.Empty);
        Assert.That(new MethodSettings { Dim = 4096, Timesteps = 10 }.Changed(), Is.Empty, "set to the default is not a change");
    }

    [Test]
    public void SettingsUsed_OfEveryMethod_AreSettingsThatExist()
    {
        var names = SettingNames().ToHashSet();
        foreach (var method in AttributionMethods.All)
        {
            Assert.That(method.SettingsUsed, Is.SubsetOf(names), method.Name);
            Assert.That(method.SettingsUsed, Is.Unique, method.Name);
        }
    }

    [Test]
    public void RequireUsedBy_ASettingTheMethodIgnores_NamesSettingMethodAndWhatItTakes()
    {
        var pixel = AttributionMethods.Find("pixel");

        var e = Assert.Throws<SettingException>(() => new MethodSettings { Timesteps = 5 }.RequireUsedBy(pixel))!;

        Assert.That((e.Setting, e.Value), Is.EqualTo(("Timesteps", (object)5)));
        Assert.That(e.Message, Does.Contain("method pixel does not use this setting").And.Contain("it takes: PixelMetric"));
    }

    [Test]
    public void RequireUsedBy_OnlySettingsTheMethodReads_Passes()
    {
        foreach (var method in AttributionMethods.All)
        {
            // Each setting the method declares, changed alone, is accepted.
            foreach (var (setting, _) in Everything.Changed().Where(c => method.SettingsUsed.Contains(c.Setting)))
            {
                var only = OnlyChanged(setting);
                Assert.That(() => only.RequireUsedBy(method), Throws.Nothing, $"{method.Name}: {setting}");
            }
            // Each one it does not declare is refused.
            foreach (var (setting, _) in Everything.Changed().Where(c => !method.SettingsUsed.Contains(c.Setting)))
            {
                Assert.That(() => OnlyChanged(setting).RequireUsedBy(method),
                    Throws.TypeOf<SettingException>().With.Property(nameof(SettingException.Setting)).EqualTo(setting), $"{method.Name}: {setting}");
            }
        }
    }

    [Test]
    public void BuildStore_ASettingTheMethodIgnores_IsRefusedBeforeAnyWork()
    {
        var store = Path.Combine(Path.GetTempPath(), "oa-never-" + Guid.NewGuid().ToString("N"));
        var options = new StoreBuildOptions
        {
            Method = "random", ModelDirectory = "/no/such/model", Data = "embedded", StoreDirectory = store,
            Settings = new MethodSettings { PixelMetric = PixelMetric.L2 },
        };

        Assert.That(() => Attributor.BuildStore(options), Throws.TypeOf<SettingException>().With.Property(nameof(SettingException.Setting)).EqualTo("PixelMetric"));
        Assert.That(Directory.Exists(store), Is.False);
    }

    /// <summary>Default settings with only <paramref name="setting"/> taken from <see cref="Everything"/>.</summary>
    private static MethodSettings OnlyChanged(string setting)
    {
        var property = typeof(MethodSettings).GetProperty(setting)!;
        var settings = new MethodSettings();
        property.SetValue(settings, property.GetValue(Everything));
        return settings;
    }
}
