using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// The settings a method store can be built with: the union of what the methods take, as a command line offers them (the
/// CLI, the server and the LDS evaluation fill it). Each method has a settings record of its own with only the ones it
/// reads (<see cref="AttributionMethod{TSettings}"/>: <see cref="TrakSettings"/>, <see cref="JourneyTrakSettings"/>, …),
/// bound from this bag in one place; its <see cref="IAttributionMethod.SettingsUsed"/> are that record's properties, and
/// <see cref="RequireUsedBy"/> refuses a setting changed from its default that the method would not read, so that nothing
/// a user asks for is silently ignored. What a build used is recorded in the store's <c>method.json</c>.
/// </summary>
public sealed record MethodSettings
{

    /// <summary>The measurement differentiated; null for the method's own default (TRAK: loss, D-TRAK: square).</summary>
    public MeasurementKind? Measurement { get; init; }

    /// <summary>K timesteps t = 0, T/K, … for the methods that average over timesteps.</summary>
    public int Timesteps { get; init; } = 10;

    /// <summary>Noise draws per timestep.</summary>
    public int NoiseDraws { get; init; } = 1;

    /// <summary>Seed of the noise draws (<see cref="FeaturizationPlan.Noise"/>).</summary>
    public long NoiseSeed { get; init; }

    /// <summary>Dense (whole gradient) or factored (per-layer Kronecker) projection; methods that need one kind refuse the other.</summary>
    public ProjectorKind Projector { get; init; } = ProjectorKind.Dense;

    /// <summary>The distribution of the projection's entries.</summary>
    public ProjectionKind Distribution { get; init; } = ProjectionKind.Rademacher;

    /// <summary>Feature dimension k of projected methods.</summary>
    public int Dim { get; init; } = 4096;

    /// <summary>Seed of the projection.</summary>
    public long ProjectionSeed { get; init; }

    /// <summary>The element type of the stored features.</summary>
    public StoreDType DType { get; init; } = StoreDType.Float32;

    /// <summary>
    /// λ relative to the mean diagonal of the curvature (TRAK kernel, K-FAC factors); null for the method's own
    /// <see cref="IDampedMethod.DefaultDamping"/>, the value chosen on the LDS validation queries.
    /// </summary>
    public double? Damping { get; init; }

    /// <summary>Examples per gradient-graph call; never changes a result.</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>Journey-TRAK: the number of sampling steps of the query's trajectory (DDIM) that are attributed.</summary>
    public int JourneySteps { get; init; } = 10;

    /// <summary>TracIn / ReTrac: model folders of the saved training checkpoints (each with its learning rate in model.json).</summary>
    public IReadOnlyList<string> Checkpoints { get; init; } = [];

    /// <summary>Seed of the method's own random choices (random baseline, per-example timestep draws).</summary>
    public long Seed { get; init; }

    /// <summary>The pixel baseline's similarity: cosine (default) or negative L2 distance.</summary>
    public PixelMetric PixelMetric { get; init; } = PixelMetric.Cosine;

    /// <summary>
    /// The settings (property names and values, in declaration order) that differ from those of <c>new MethodSettings()</c>:
    /// every public property, found by reflection, so a setting added later cannot escape <see cref="RequireUsedBy"/>. A list
    /// differs when its items do, and is given as its items joined by commas.
    /// </summary>
    public IReadOnlyList<(string Setting, object? Value)> Changed()
    {
        var defaults = new MethodSettings();
        var changed = new List<(string, object?)>();
        foreach (var property in PublicProperties(typeof(MethodSettings)).OrderBy(p => p.MetadataToken))
        {
            object? value = property.GetValue(this), initial = property.GetValue(defaults);
            if (value is IEnumerable<string> items && initial is IEnumerable<string> initialItems)
            {
                if (!items.SequenceEqual(initialItems, StringComparer.Ordinal))
                {
                    changed.Add((property.Name, string.Join(",", items)));
                }
            }
            else if (!Equals(value, initial))
            {
                changed.Add((property.Name, value));
            }
        }
        return changed;
    }

    /// <summary>Throws when a setting changed from its default is not among <paramref name="used"/>.</summary>
    /// <param name="method">The method the settings are for (named in the message).</param>
    /// <param name="used">The settings it reads; by default its <see cref="IAttributionMethod.SettingsUsed"/>.</param>
    /// <exception cref="SettingException">The first such setting: the method would ignore it.</exception>
    public void RequireUsedBy(IAttributionMethod method, IReadOnlyCollection<string>? used = null)
    {
        ArgumentNullException.ThrowIfNull(method);
        used ??= method.SettingsUsed;
        foreach (var (setting, value) in Changed())
        {
            if (!used.Contains(setting))
            {
                string takes = used.Count == 0 ? "none" : string.Join(", ", used);
                throw new SettingException(setting, value, $"method {method.Name} does not use this setting (it takes: {takes}); leave it out");
            }
        }
    }

    /// <summary>What binding reads of a settings record by reflection (kept by the trimmer for every record bound).</summary>
    internal const DynamicallyAccessedMemberTypes BoundMembers = DynamicallyAccessedMemberTypes.PublicProperties
        | DynamicallyAccessedMemberTypes.PublicParameterlessConstructor | DynamicallyAccessedMemberTypes.NonPublicConstructors;

    /// <summary>
    /// A method's own settings record bound from this bag: each public property of <typeparamref name="T"/> takes the
    /// value of the bag's property of the same name, the bag's defaults included (a record's own initial values never count).
    /// </summary>
    /// <exception cref="InvalidOperationException"><typeparamref name="T"/> has a property the bag lacks, or of another type.</exception>
    internal T Bind<[DynamicallyAccessedMembers(MethodSettings.BoundMembers)] T>() where T : class
    {
        var settings = (T)Activator.CreateInstance(typeof(T), nonPublic: true)!;
        foreach (var (bag, own) in Declared(typeof(T)))
        {
            own.SetValue(settings, bag.GetValue(this));
        }
        return settings;
    }

    /// <summary>The names of the settings a settings record declares (its public properties), in the bag's order.</summary>
    /// <exception cref="InvalidOperationException">A property the bag lacks, or of another type.</exception>
    internal static IReadOnlyList<string> NamesIn([DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicProperties)] Type settingsType) =>
        [.. Declared(settingsType).Select(p => p.Bag.Name)];

    /// <summary>Each public property of <paramref name="settingsType"/> with the bag's property it is bound from, in the bag's order.</summary>
    private static List<(PropertyInfo Bag, PropertyInfo Own)> Declared(
        [DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicProperties)] Type settingsType)
    {
        var bag = PublicProperties(typeof(MethodSettings)).ToDictionary(p => p.Name, StringComparer.Ordinal);
        return PublicProperties(settingsType)
            .Select(own => bag.TryGetValue(own.Name, out var from) && from.PropertyType == own.PropertyType && own.CanWrite
                ? (Bag: from, Own: own)
                : throw new InvalidOperationException($"{settingsType.Name}.{own.Name}: {nameof(MethodSettings)} has no {own.PropertyType.Name} {own.Name} " +
                    "to bind it from (a method's settings record holds settable properties named and typed as the bag's)"))
            .OrderBy(p => p.Bag.MetadataToken)
            .ToList();
    }

    private static PropertyInfo[] PublicProperties([DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicProperties)] Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance);
}
