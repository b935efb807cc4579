using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Core.Attribution;

/// <summary>What <see cref="StoreUpdate.Append"/> adds to a store: new training images and where they came from.</summary>
public sealed record AppendRequest
{
    /// <summary>The store folder (a finished trak or d-trak store).</summary>
    public required string StoreDirectory { get; init; }

    /// <summary>The new rows' images, in order; they become rows N, N + 1, … of the store.</summary>
    public required ImageDataset Data { get; init; }

    /// <summary>The dataset as the user named it (recorded in source.json).</summary>
    public required string DataName { get; init; }

    /// <summary>The subset of it as the user named it.</summary>
    public string Subset { get; init; } = "all";

    /// <summary>The model folder; null for the one the store's source.json names. Either way it must be the store's model.</summary>
    public string? ModelDirectory { get; init; }

    /// <summary>Who asks (recorded in the version); null for the user name.</summary>
    public string? By { get; init; }

    /// <summary>Examples read and projected together (does not change the result).</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>ONNX Runtime settings for featurizing the new rows.</summary>
    public SessionSettings Session { get; init; } = SessionSettings.Default;
}
