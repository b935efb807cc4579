namespace OnnxAttribution.Core.Attribution;

/// <summary>Which kernel matrix a <see cref="Preconditioner"/> factors; both give the same scores.</summary>
public enum KernelForm
{
    /// <summary>ΦᵀΦ + λI, k × k: one k × k solve per query; the store's size does not matter.</summary>
    Primal,

    /// <summary>ΦΦᵀ + λI, N × N: cheaper when the store has fewer rows than k (large projections of small training sets).</summary>
    Dual,
}
