using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Reporting;

/// <summary>Where a report's numbers come from: the model, the store's settings and version, the tool and the command.</summary>
/// <param name="ModelFingerprint">SHA-256 of the model's gradient graph (meta.json's <c>modelFingerprint</c>); null for a store without meta.json.</param>
/// <param name="Method">The attribution method (e.g. "d-trak").</param>
/// <param name="Measurement">The measurement featurized (meta.json); null without meta.json.</param>
/// <param name="Timesteps">The timesteps featurized (meta.json); null without meta.json.</param>
/// <param name="Dim">k, the projected dimension (meta.json); null without meta.json.</param>
/// <param name="StoreVersion">The number of history.json's last version; null for an unversioned store.</param>
/// <param name="StoreVersionId">That version's id (64 hex digits); null for an unversioned store.</param>
/// <param name="ToolVersion">The engine's version (OnnxAttribution.Core's informational version).</param>
/// <param name="Command">The command that makes the same report again.</param>
public sealed record ReportProvenance(string? ModelFingerprint, string Method, string? Measurement, IReadOnlyList<long>? Timesteps, int? Dim,
    long? StoreVersion, string? StoreVersionId, string ToolVersion, string Command)
{
    /// <summary>The engine's version, as the tool reports it.</summary>
    public static string EngineVersion => StoreHistory.ToolVersion;

    /// <summary>Rows removed from the store (meta.json's removedRows): never among a report's rows nor in its statistics.</summary>
    public IReadOnlyList<long> RemovedRows { get; init; } = [];

    /// <summary>"version N (id)" or "unversioned".</summary>
    public string DescribeVersion() => StoreVersion is long n ? $"version {n} ({StoreVersionId})" : "unversioned";

    /// <summary>Reads a store folder's meta.json (when it has one) and history.json (when it has one).</summary>
    /// <param name="storeDirectory">The store folder.</param>
    /// <param name="method">The method its scorer reports.</param>
    /// <param name="command">The command that reproduces the report.</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="StoreFormatException">meta.json or history.json is there but damaged: the message names the file and field.</exception>
    public static ReportProvenance Read(string storeDirectory, string method, string command)
    {
        ArgumentNullException.ThrowIfNull(storeDirectory);
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(command);
        string metaPath = Path.Combine(storeDirectory, StoreFiles.Meta);
        var meta = File.Exists(metaPath) ? StoreMeta.Load(metaPath) : null;
        var head = StoreHistory.TryLoad(storeDirectory)?.Head;
        return new ReportProvenance(meta?.ModelFingerprint, method, meta?.Measurement, meta?.Timesteps, meta?.Projector.Dim, head?.Number, head?.Id, EngineVersion, command)
        {
            RemovedRows = meta?.RemovedRows ?? [],
        };
    }
}
