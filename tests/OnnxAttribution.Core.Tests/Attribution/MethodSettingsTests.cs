using System.Reflection;
using System.Text.RegularExpressions;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests.Attribution;

/// <summary>
/// Each method reads a settings record of its own, bound from the bag in one place; the settings it declares are that
/// record's properties, and a setting changed for a method that would ignore it is refused.
/// </summary>
public sealed partial class MethodSettingsTests
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
    public void SettingsUsed_OfEveryMethod_AreThePropertiesOfItsSettingsType()
    {
        foreach (var method in AttributionMethods.All)
        {
            if (SettingsTypeOf(method) is not { } type)
            {
                // The ensemble trains its own models ('train-ensemble'); its Build refuses whatever it is given.
                Assert.That((method.Name, method.SettingsUsed.Count), Is.EqualTo(("ensemble", 0)));
                continue;
            }
            var properties = type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Select(p => p.Name);
            Assert.That(method.SettingsUsed, Is.EquivalentTo(properties), $"{method.Name}: {type.Name}");
        }
    }

    [Test]
    public void SettingsUsed_AreWhatEachMethodReadBeforeItsSettingsHadTypes()
    {
        string[] features = ["Measurement", "Timesteps", "NoiseDraws", "NoiseSeed", "Projector", "Distribution", "Dim", "ProjectionSeed", "DType", "BatchSize"];
        var expected = new Dictionary<string, string[]>
        {
            ["trak"] = [.. features, "Damping"],
            ["d-trak"] = [.. features, "Damping"],
            ["das"] = [.. features, "Damping"],
            ["gradient-cosine"] = features,
            ["pixel"] = ["PixelMetric"],
            ["random"] = ["Seed"],
            ["journey-trak"] = [.. features.Except(["Timesteps"]), "JourneySteps", "Damping"],
            ["tracin"] = [.. features, "Checkpoints", "Seed"],
            ["retrac"] = [.. features, "Checkpoints", "Seed"],
            ["kfac"] = [.. features.Except(["Projector"]), "Damping", "Seed"],
            ["ekfac"] = [.. features.Except(["Projector"]), "Damping", "Seed"],
            ["ensemble"] = [],
        };
        Assert.That(AttributionMethods.All.Select(m => m.Name), Is.EquivalentTo(expected.Keys));
        foreach (var method in AttributionMethods.All)
        {
            Assert.That(method.SettingsUsed, Is.EquivalentTo(expected[method.Name]), method.Name);
        }
    }

    [Test]
    public void SettingsUsed_ComeInTheBagsOrder()
    {
        var order = SettingNames().ToList();
        foreach (var method in AttributionMethods.All)
        {
            Assert.That(method.SettingsUsed.Select(s => order.IndexOf(s)), Is.Ordered.Ascending, method.Name);
        }
    }

    [Test]
    public void Bind_EveryMethod_TakesEachOfItsSettingsFromTheBag()
    {
        foreach (var method in AttributionMethods.All.Where(m => SettingsTypeOf(m) is not null))
        {
            foreach (var bag in new[] { Everything, new MethodSettings() })
            {
                var bound = method.GetType().GetMethod("Bind")!.Invoke(method, [bag])!;
                Assert.That(bound.GetType(), Is.EqualTo(SettingsTypeOf(method)), method.Name);
                foreach (var setting in method.SettingsUsed)
                {
                    object? value = bound.GetType().GetProperty(setting)!.GetValue(bound), expected = typeof(MethodSettings).GetProperty(setting)!.GetValue(bag);
                    Assert.That(value, Is.EqualTo(expected), $"{method.Name}: {setting}");
                }
            }
        }
    }

    [Test]
    public void Bind_ASettingsTypeWithAPropertyTheBagLacksOrTypesOtherwise_Throws()
    {
        Assert.That(() => MethodSettings.NamesIn(typeof(Unknown)),
            Throws.InvalidOperationException.With.Message.StartsWith("Unknown.Temperature: MethodSettings has no Double Temperature"));
        Assert.That(() => new MethodSettings().Bind<Retyped>(),
            Throws.InvalidOperationException.With.Message.StartsWith("Retyped.Dim: MethodSettings has no Int64 Dim"));
        Assert.That(new MethodSettings { Dim = 64 }.Bind<DimOnly>().Dim, Is.EqualTo(64));
        Assert.That(MethodSettings.NamesIn(typeof(DimOnly)), Is.EqualTo(new[] { "Dim" }));
    }

    /// <summary>
    /// A method's code reads its typed settings, never the bag: in the methods' sources the request's bag appears only as
    /// the argument of <c>Bind</c> (each method names its <see cref="MethodBuildRequest"/> <c>request</c>, as
    /// <see cref="IAttributionMethod.Build"/> does). Reading <c>request.Settings.X</c> for an X the settings type lacks fails here.
    /// </summary>
    [Test]
    public void MethodSources_ReadTheRequestsSettingsOnlyThroughBind()
    {
        var folder = Path.Combine(RepositoryFiles.Root, "src", "OnnxAttribution.Core", "Attribution", "Methods");
        var reads = Directory.EnumerateFiles(folder, "*.cs")
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (File: Path.GetFileName(f), Line: i + 1, Text: line)))
            .Where(l => BagRead().IsMatch(l.Text))
            .ToList();
        Assert.That(reads, Is.Not.Empty, "the pattern finds the binds themselves");
        Assert.That(reads.Where(l => BagRead().Matches(l.Text).Any(m => m.Groups["bind"].Length == 0)).Select(l => $"{l.File}:{l.Line}: {l.Text.Trim()}"),
            Is.Empty, "bind the request's settings (AttributionMethod<TSettings>.Bind) and read the record instead");
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

    /// <summary>The settings record of an <see cref="AttributionMethod{TSettings}"/>; null for a method without one.</summary>
    private static Type? SettingsTypeOf(IAttributionMethod method)
    {
        for (var type = method.GetType(); type is not null; type = type.BaseType)
        {
            if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(AttributionMethod<>))
            {
                return type.GetGenericArguments()[0];
            }
        }
        return null;
    }

    /// <summary><c>request.Settings</c>, with group "bind" set where it is <c>Bind</c>'s argument.</summary>
    [GeneratedRegex(@"(?<bind>\bBind\()?\brequest\.Settings\b")]
    private static partial Regex BagRead();

    private sealed record Unknown
    {
        public double Temperature { get; init; }
    }

    private sealed record Retyped
    {
        public long Dim { get; init; }
    }

    private sealed record DimOnly
    {
        public int Dim { get; init; }
    }
}
