namespace OnnxAttribution.Core.Attribution;

/// <summary>The checks of one store folder.</summary>
/// <param name="Directory">The store folder.</param>
/// <param name="Checks">Every check run, in order.</param>
public sealed record StoreVerification(string Directory, IReadOnlyList<StoreFileCheck> Checks)
{
    /// <summary>True when every check passed.</summary>
    public bool Ok => Checks.All(c => c.Ok);
}
