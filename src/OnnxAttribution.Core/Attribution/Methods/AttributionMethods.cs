using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>Every method the engine has, by name, and opening a method store whatever its method.</summary>
public static class AttributionMethods
{
    /// <summary>The methods in the order docs/guides/methods.md's table lists them.</summary>
    public static IReadOnlyList<IAttributionMethod> All { get; } =
    [
        new TrakMethod("trak", MeasurementKind.Loss, LdsChosenDamping.Trak),
        new TrakMethod("d-trak", MeasurementKind.Square, LdsChosenDamping.DTrak),
        new DasMethod(),
        new PixelMethod(),
        new GradientCosineMethod(),
        new RandomMethod(),
        new JourneyTrakMethod(),
        new TracInMethod("tracin", renormalize: false),
        new TracInMethod("retrac", renormalize: true),
        new KfacMethod("kfac", Influence.CurvatureKind.Kfac, LdsChosenDamping.Kfac),
        new KfacMethod("ekfac", Influence.CurvatureKind.Ekfac, LdsChosenDamping.Ekfac),
        new EnsembleMethod(),
        // more methods: add one line here
    ];

    /// <summary>The names, comma-separated, for help texts and errors.</summary>
    public static string Names => string.Join(", ", All.Select(m => m.Name));

    /// <exception cref="UserInputException">No method has that name.</exception>
    public static IAttributionMethod Find(string name) =>
        All.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new UserInputException($"unknown method '{name}'; known: {Names}");

    /// <summary>The method of a store folder: method.json, or for a bare TRAK feature store its meta.json.</summary>
    /// <exception cref="UserInputException">The folder is not a method store.</exception>
    public static IAttributionMethod MethodOf(string storeDirectory)
    {
        if (MethodManifest.TryLoad(storeDirectory) is { } manifest)
        {
            return Find(manifest.Method);
        }
        if (File.Exists(Path.Combine(storeDirectory, StoreFiles.Meta)))
        {
            using var store = FeatureStore.Open(storeDirectory);
            return Find(store.Meta.Method);
        }
        throw new UserInputException($"{storeDirectory}: neither {StoreFiles.Method} nor {StoreFiles.Meta}: not a method store (build one with 'featurize --method …')");
    }

    /// <summary>Opens a method store with its scorer.</summary>
    /// <param name="storeDirectory">The store folder.</param>
    /// <param name="modelDirectory">The model; null for the one in the store's source.json.</param>
    /// <param name="session">ONNX Runtime settings.</param>
    public static IAttributionScorer Open(string storeDirectory, string? modelDirectory = null, SessionSettings? session = null)
    {
        var method = MethodOf(storeDirectory);
        var model = modelDirectory ?? StoreSource.TryLoad(storeDirectory)?.ModelDirectory
            ?? throw new UserInputException($"{storeDirectory} has no {StoreFiles.Source}: pass the model folder");
        session ??= SessionSettings.Default;
        if (session.QueryTimesteps != 0 && !method.Capabilities.QueryTimesteps)
        {
            throw new UserInputException($"query timesteps {session.QueryTimesteps}: method {method.Name} ({storeDirectory}) does not use it; " +
                $"it applies to {string.Join(", ", QueryTimestepMethods)}: leave it out");
        }
        RequireConditionSupport(method, model);
        return method.Open(storeDirectory, model, session);
    }

    /// <summary>Refuses a method that does not attribute conditional models for a model that takes a condition.</summary>
    /// <exception cref="UserInputException">The model is conditional and the method is not among those that attribute it.</exception>
    public static void RequireConditionSupport(IAttributionMethod method, string modelDirectory)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(modelDirectory);
        if (method.Capabilities.ConditionalModels || !Directory.Exists(modelDirectory) || !File.Exists(Path.Combine(modelDirectory, Runtime.Models.ModelMetadata.FileName)))
        {
            return;
        }
        if (Runtime.Models.ModelMetadata.Load(modelDirectory).Condition is { } condition)
        {
            throw new UserInputException($"method {method.Name} does not attribute conditional models yet; model {modelDirectory} takes a " +
                $"{condition.Kind.ToString().ToLowerInvariant()} (input '{condition.Input}'). Methods that do: " +
                string.Join(", ", All.Where(m => m.Capabilities.ConditionalModels).Select(m => m.Name)));
        }
    }

    /// <summary>Refuses a projector the method cannot build with (<see cref="MethodCapabilities.DenseProjectorOnly"/>), before any work is done.</summary>
    /// <exception cref="SettingException">The method needs another projector.</exception>
    public static void CheckProjector(IAttributionMethod method, ProjectorKind projector)
    {
        ArgumentNullException.ThrowIfNull(method);
        if (method.Capabilities.DenseProjectorOnly && projector != ProjectorKind.Dense)
        {
            throw new SettingException("Projector", projector, $"{method.Name} normalises each timestep's whole gradient, which only the dense projection forms", ProjectorKind.Dense);
        }
    }

    /// <summary>The methods whose queries honour <see cref="SessionSettings.QueryTimesteps"/> (<see cref="MethodCapabilities.QueryTimesteps"/>).</summary>
    public static IReadOnlyList<string> QueryTimestepMethods { get; } = [.. All.Where(m => m.Capabilities.QueryTimesteps).Select(m => m.Name)];

    /// <summary>The methods whose stores can be updated in place (<see cref="MethodCapabilities.Updatable"/>).</summary>
    public static IReadOnlyList<string> UpdatableMethods { get; } = [.. All.Where(m => m.Capabilities.Updatable).Select(m => m.Name)];
}
