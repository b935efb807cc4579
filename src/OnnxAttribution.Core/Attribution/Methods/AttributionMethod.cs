using System.Diagnostics.CodeAnalysis;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// A method whose build reads a settings record of its own, <typeparamref name="TSettings"/>, and nothing else of the
/// <see cref="MethodSettings"/> it is given: the record's properties are the settings it uses (named and typed as the
/// bag's), so <see cref="SettingsUsed"/> follows from the type, and <see cref="Build(MethodBuildRequest, CancellationToken)"/>
/// binds the request's bag once (<see cref="Bind"/>) and hands the record to the method's own build.
/// </summary>
/// <typeparam name="TSettings">The method's settings: a record whose public properties are <see cref="MethodSettings"/>' of the same names.</typeparam>
public abstract class AttributionMethod<[DynamicallyAccessedMembers(MethodSettings.BoundMembers)] TSettings> : IAttributionMethod
    where TSettings : class
{
    /// <inheritdoc/>
    public abstract string Name { get; }

    /// <inheritdoc/>
    public abstract string Summary { get; }

    /// <inheritdoc/>
    public abstract MethodCapabilities Capabilities { get; }

    /// <summary>The properties of <typeparamref name="TSettings"/>, in <see cref="MethodSettings"/>' order: the settings this method's build reads.</summary>
    public IReadOnlyCollection<string> SettingsUsed { get; } = MethodSettings.NamesIn(typeof(TSettings));

    /// <summary>The method's own settings from <paramref name="settings"/>: each of its properties the bag's of the same name.</summary>
    public TSettings Bind(MethodSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return settings.Bind<TSettings>();
    }

    /// <summary>Builds (or finishes building) the method store with the settings bound from <see cref="MethodBuildRequest.Settings"/>.</summary>
    public void Build(MethodBuildRequest request, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        Build(request, Bind(request.Settings), cancel);
    }

    /// <summary>The method's build: it reads <paramref name="settings"/>, never <see cref="MethodBuildRequest.Settings"/>.</summary>
    /// <param name="request">The model, data and store folder (its settings already bound into <paramref name="settings"/>).</param>
    /// <param name="settings">The method's settings.</param>
    /// <param name="cancel">Stops the build; what was written so far is kept for the rerun.</param>
    protected abstract void Build(MethodBuildRequest request, TSettings settings, CancellationToken cancel);

    /// <inheritdoc/>
    public abstract IAttributionScorer Open(string storeDirectory, string modelDirectory, SessionSettings session);
}
