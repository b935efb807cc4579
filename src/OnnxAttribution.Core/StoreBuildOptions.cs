using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Runtime;

namespace OnnxAttribution;

/// <summary>What <see cref="Attributor.BuildStore"/> builds.</summary>
public sealed record StoreBuildOptions
{
    /// <summary>The method's name (e.g. "d-trak"; see <see cref="AttributionMethods.Names"/>).</summary>
    public required string Method { get; init; }

    /// <summary>The model folder (model.json, forward.onnx, vjp.onnx).</summary>
    public required string ModelDirectory { get; init; }

    /// <summary>The training data: "embedded", "fashion-mnist", a folder of PNGs or an IDX image file.</summary>
    public required string Data { get; init; }

    /// <summary>The rows of <see cref="Data"/> used, e.g. "0:1000"; empty for all of them.</summary>
    public string Subset { get; init; } = "";

    /// <summary>The store folder; created if missing, continued if an earlier build was interrupted.</summary>
    public required string StoreDirectory { get; init; }

    /// <summary>The method's settings (projection dimension, timesteps, …); each method reads those it uses.</summary>
    public MethodSettings Settings { get; init; } = new();

    /// <summary>ONNX Runtime settings (device, threads).</summary>
    public SessionSettings Session { get; init; } = SessionSettings.Default;
}
