namespace OnnxAttribution.Store;

/// <summary>A whole file's length and XxHash64 (lower-case hex), as recorded in checksums.json.</summary>
public sealed record FileChecksum(long Bytes, string Hash);
