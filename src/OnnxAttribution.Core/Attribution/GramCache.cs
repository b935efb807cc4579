namespace OnnxAttribution.Core.Attribution;

/// <summary>ΦᵀΦ of feature stores, accumulated once per store (by folder and content fingerprint) for a damping sweep.</summary>
public sealed class GramCache
{
    private readonly Dictionary<string, (byte[] Fingerprint, Preconditioner.GramAccumulator Gram)> _grams = new(StringComparer.Ordinal);

    /// <summary>The Gram matrix of the store in <paramref name="storeDirectory"/>, accumulated on first use.</summary>
    public Preconditioner.GramAccumulator For(string storeDirectory)
    {
        var key = Path.GetFullPath(storeDirectory);
        var fingerprint = PreconditionerBuilder.StoreFingerprint(storeDirectory);
        if (_grams.TryGetValue(key, out var hit) && hit.Fingerprint.AsSpan().SequenceEqual(fingerprint))
        {
            return hit.Gram;
        }
        var gram = PreconditionerBuilder.Gram(storeDirectory);
        _grams[key] = (fingerprint, gram);
        return gram;
    }

    /// <summary>Forgets every Gram matrix (k² float64 each).</summary>
    public void Clear() => _grams.Clear();
}
