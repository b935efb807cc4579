using System.Text.Json.Serialization;

namespace OnnxAttribution.Store;

/// <summary>
/// One version of a store in its <see cref="StoreHistory"/>: what changed, from which parent, and what the store held
/// afterwards (model, data, rows, settings, and the hashes of meta.json, of the features and of the preconditioner).
/// </summary>
/// <remarks>
/// <see cref="Id"/> is the SHA-256 of this record written as JSON with <see cref="Id"/> null; it covers
/// <see cref="Parent"/>, so a changed or reordered entry anywhere breaks every id after it (<see cref="StoreHistory.Verify"/>).
/// Only the newest version's files are in the folder: older versions are records of what was, not copies.
/// </remarks>
public sealed record StoreVersion
{
    /// <summary>1 for the first version, one more for each change.</summary>
    public required int Number { get; init; }

    /// <summary>SHA-256 (64 lower-case hex digits) of this entry written with <see cref="Id"/> null.</summary>
    public string? Id { get; init; }

    /// <summary>The id of the version this one was made from; null for the first.</summary>
    public string? Parent { get; init; }

    /// <summary>What made this version: featurize, merge, finalize, redamp, append, remove.</summary>
    public required string Change { get; init; }

    /// <summary>When (UTC).</summary>
    public required DateTimeOffset Time { get; init; }

    /// <summary>The version of the tool that wrote it.</summary>
    public required string Tool { get; init; }

    /// <summary>Who asked for the change (remove's --by; the user name otherwise).</summary>
    public string? By { get; init; }

    /// <summary>Why (remove's --reason); null where none was given.</summary>
    public string? Reason { get; init; }

    /// <summary>Rows this change added: [first, end) of the dataset rows; null when none.</summary>
    public IReadOnlyList<long>? AddedRows { get; init; }

    /// <summary>Rows this change removed; null when none.</summary>
    public IReadOnlyList<long>? RemovedRows { get; init; }

    /// <summary>Rows of the store after the change (removed rows included: they keep their numbers).</summary>
    public required long Rows { get; init; }

    /// <summary>Rows answered after the change (removed rows left out).</summary>
    public required long LiveRows { get; init; }

    /// <summary>SHA-256 of the model's gradient graph (meta.json's modelFingerprint).</summary>
    public required string ModelSha256 { get; init; }

    /// <summary>Fingerprint of the training images in row order (meta.json's datasetFingerprint).</summary>
    public required string DatasetFingerprint { get; init; }

    /// <summary>The rows' settings in one line: method, measurement, timesteps, draws, projector, k, dtype.</summary>
    public required string Settings { get; init; }

    /// <summary>The relative damping of the preconditioner after the change; null when the store is not finalized.</summary>
    public double? Damping { get; init; }

    /// <summary>SHA-256 of meta.json after the change.</summary>
    public required string MetaSha256 { get; init; }

    /// <summary>
    /// SHA-256 of the list of features.npy's chunk hashes in checksums.json after the change: the features, without reading
    /// them again. Null in a store without checksums.
    /// </summary>
    public string? FeaturesSha256 { get; init; }

    /// <summary>The checksum of preconditioner.bin recorded in checksums.json after the change; null when the store is not finalized.</summary>
    public FileChecksum? Preconditioner { get; init; }

    /// <summary>The id of this entry as <see cref="StoreHistory"/> computes it.</summary>
    [JsonIgnore]
    public string ComputedId => StoreHistory.IdOf(this);
}
