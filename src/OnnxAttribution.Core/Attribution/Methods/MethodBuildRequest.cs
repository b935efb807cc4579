using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>What a method store is built from.</summary>
public sealed record MethodBuildRequest
{
    /// <summary>The model attributed (model.json, forward.onnx, vjp.onnx).</summary>
    public required string ModelDirectory { get; init; }

    /// <summary>The training images, already subset: row i of every store is image i of this dataset.</summary>
    public required ImageDataset Data { get; init; }

    /// <summary>Where the rows came from as the user named it; saved as source.json.</summary>
    public required StoreSource Source { get; init; }

    /// <summary>The method store folder; created if missing, continued if a build was interrupted.</summary>
    public required string OutDirectory { get; init; }

    /// <summary>The method's settings; each method reads those it uses.</summary>
    public MethodSettings Settings { get; init; } = new();

    /// <summary>ONNX Runtime settings (device, threads).</summary>
    public SessionSettings Session { get; init; } = SessionSettings.Default;

    /// <summary>Receives the progress of each stage of the build; null for none.</summary>
    public IProgress<MethodProgress>? Progress { get; init; }
}
