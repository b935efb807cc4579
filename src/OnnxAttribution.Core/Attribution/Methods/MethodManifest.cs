using System.Text.Json.Nodes;
using System.Text.Json;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// The method of a store folder and its settings (<c>method.json</c>): written last by a build, so its presence says the
/// store is complete.
/// </summary>
public sealed record MethodManifest(string Method, JsonObject Settings)
{
    /// <summary>Format of method.json; readers refuse newer ones.</summary>
    public int Version { get; init; } = 1;

    /// <summary>Writes method.json into <paramref name="directory"/> (created if missing), atomically.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, StoreFiles.Method);
        JsonFile.Save(path, this);
    }

    /// <summary>Reads method.json, or null when the folder has none.</summary>
    /// <exception cref="UserInputException">The file is not valid.</exception>
    public static MethodManifest? TryLoad(string directory)
    {
        var path = Path.Combine(directory, StoreFiles.Method);
        if (!File.Exists(path))
        {
            return null;
        }
        MethodManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<MethodManifest>(File.ReadAllText(path), ModelMetadata.JsonOptions);
        }
        catch (JsonException e)
        {
            throw new UserInputException($"{path}: not valid ({e.Message})", e);
        }
        if (manifest is null || string.IsNullOrEmpty(manifest.Method))
        {
            throw new UserInputException($"{path}: field 'method' is missing");
        }
        if (manifest.Version > 1)
        {
            throw new UserInputException($"{path}: field 'version' is {manifest.Version}; this build reads version 1");
        }
        return manifest;
    }

    /// <summary>Reads the method.json of a store that must be complete and of <paramref name="method"/>.</summary>
    /// <exception cref="UserInputException">method.json is missing (an unfinished build), invalid, or of another method.</exception>
    public static MethodManifest Require(string directory, string method)
    {
        var manifest = TryLoad(directory)
            ?? throw new UserInputException($"{Path.Combine(directory, StoreFiles.Method)} not found: the {method} store is not complete; run 'featurize --method {method}' again to finish it");
        if (!string.Equals(manifest.Method, method, StringComparison.OrdinalIgnoreCase))
        {
            throw new UserInputException($"{Path.Combine(directory, StoreFiles.Method)}: field 'method' is '{manifest.Method}', expected '{method}'");
        }
        return manifest;
    }

    /// <summary>A typed settings record from <see cref="Settings"/>.</summary>
    /// <exception cref="UserInputException">The settings do not fit <typeparamref name="T"/>.</exception>
    public T SettingsAs<T>(string directory)
    {
        try
        {
            return Settings.Deserialize<T>(ModelMetadata.JsonOptions) ?? throw new JsonException("null");
        }
        catch (JsonException e)
        {
            throw new UserInputException($"{Path.Combine(directory, StoreFiles.Method)}: field 'settings' does not fit method {Method} ({e.Message})", e);
        }
    }

    /// <summary>
    /// Builds a store that holds nothing but where its rows come from (source.json) and <paramref name="settings"/>
    /// (method.json): the model-free baselines, which read what they need when opened.
    /// </summary>
    public static void SaveRecordOnly<T>(MethodBuildRequest request, string method, T settings)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Source.Save(request.OutDirectory);
        Of(method, settings).Save(request.OutDirectory);
        request.Progress?.Report(new MethodProgress("record", request.Data.Count, request.Data.Count));
    }

    /// <summary>A manifest whose settings are <paramref name="settings"/> serialized.</summary>
    public static MethodManifest Of<T>(string method, T settings) =>
        new(method, JsonSerializer.SerializeToNode(settings, ModelMetadata.JsonOptions)!.AsObject());
}
