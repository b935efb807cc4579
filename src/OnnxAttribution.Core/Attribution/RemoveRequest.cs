namespace OnnxAttribution.Core.Attribution;

/// <summary>What <see cref="StoreUpdate.Remove"/> takes out of a store, and why.</summary>
public sealed record RemoveRequest
{
    /// <summary>The store folder (a finished trak or d-trak store).</summary>
    public required string StoreDirectory { get; init; }

    /// <summary>The dataset rows to remove (row numbers as answers give them).</summary>
    public required IReadOnlyList<long> Rows { get; init; }

    /// <summary>Why (a takedown request, a privacy request …): recorded in the store's history. Required.</summary>
    public required string Reason { get; init; }

    /// <summary>Who asks (recorded in the version); null for the user name.</summary>
    public string? By { get; init; }
}
