namespace OnnxAttribution.Store;

/// <summary>How the features were projected: <c>kind</c> (e.g. "rademacher", "gaussian", "factored"), the RNG seed, the output
/// dimension k (the store's column count), and free-form settings of that projector.</summary>
public sealed record ProjectorSpec(string Kind, long Seed, int Dim)
{
    /// <summary>Projector settings beyond kind, seed and dim (e.g. block size, layer list). Compared key by key.</summary>
    public IReadOnlyDictionary<string, string> Settings { get; init; } = new SortedDictionary<string, string>(StringComparer.Ordinal);

    /// <inheritdoc/>
    public bool Equals(ProjectorSpec? other) =>
        other is not null && Kind == other.Kind && Seed == other.Seed && Dim == other.Dim && StoreMeta.SameSettings(Settings, other.Settings);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Kind, Seed, Dim, Settings.Count);
}
