using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// Where an answer came from, as answers name it (CLI <c>--json</c>, the server, the edge tool, the report): the store's
/// version (history.json) and the SHA-256 of the model's gradient graph it was built from (meta.json).
/// </summary>
/// <param name="Version">The store version's number; null for a store without versions.</param>
/// <param name="VersionId">The store version's id; null for a store without versions.</param>
/// <param name="ModelSha256">meta.json's modelFingerprint; null for a folder without meta.json (ensembles, journey-trak, baselines).</param>
public sealed record StoreProvenance(int? Version, string? VersionId, string? ModelSha256)
{
    /// <summary>The provenance of the store in <paramref name="storeDirectory"/> as its files say now.</summary>
    /// <exception cref="StoreFormatException">history.json or meta.json is damaged.</exception>
    public static StoreProvenance Of(string storeDirectory)
    {
        ArgumentNullException.ThrowIfNull(storeDirectory);
        var head = StoreHistory.TryLoad(storeDirectory)?.Head;
        string meta = Path.Combine(storeDirectory, StoreFiles.Meta);
        return new StoreProvenance(head?.Number, head?.Id, File.Exists(meta) ? StoreMeta.Load(meta).ModelFingerprint : null);
    }
}
