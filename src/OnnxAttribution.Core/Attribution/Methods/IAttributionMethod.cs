using OnnxAttribution.Runtime;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// One attribution method: builds its store from a model and training set (resumable where that is long work), and
/// opens it to answer queries. Stores are folders with <c>method.json</c> (<see cref="MethodManifest"/>) and
/// <c>source.json</c> (<see cref="StoreSource"/>).
/// </summary>
public interface IAttributionMethod
{
    /// <summary>The name the CLI uses with <c>--method</c>.</summary>
    string Name { get; }

    /// <summary>One line for help and docs/guides/methods.md's table: what the method differentiates or compares.</summary>
    string Summary { get; }

    /// <summary>
    /// The <see cref="MethodSettings"/> properties (by name) this method's build reads; the others it ignores. For an
    /// <see cref="AttributionMethod{TSettings}"/>, the properties of its settings record, never a list kept by hand.
    /// </summary>
    IReadOnlyCollection<string> SettingsUsed { get; }

    /// <summary>
    /// What the method can do (conditional models, the fast query setting, updates in place, …): asked instead of its name.
    /// A conditional model (model.json's <c>condition</c>) is attributed with each training row featurized under its own
    /// condition and each query under the one it carries; a method without <see cref="MethodCapabilities.ConditionalModels"/> is refused for it.
    /// </summary>
    MethodCapabilities Capabilities { get; }

    /// <summary>Builds (or finishes building) the method store. A rerun after a kill continues where it stopped.</summary>
    void Build(MethodBuildRequest request, CancellationToken cancel = default);

    /// <summary>Opens a built store.</summary>
    /// <param name="storeDirectory">The method store.</param>
    /// <param name="modelDirectory">The model it was built from (from source.json when the caller has nothing better).</param>
    /// <param name="session">ONNX Runtime settings for the methods that run the model at query time.</param>
    IAttributionScorer Open(string storeDirectory, string modelDirectory, SessionSettings session);
}
