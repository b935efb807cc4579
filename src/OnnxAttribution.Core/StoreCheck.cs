namespace OnnxAttribution;

/// <summary>What <see cref="Attributor.Verify"/> found.</summary>
/// <param name="FeatureStores">The feature store folders read (the store itself, per-step or per-checkpoint stores in it).</param>
/// <param name="RowsChecked">Feature rows read, over all of them.</param>
/// <param name="Problems">What is wrong, each naming the file and row; empty when the store is sound.</param>
public sealed record StoreCheck(IReadOnlyList<string> FeatureStores, long RowsChecked, IReadOnlyList<string> Problems)
{
    /// <summary>True when no problem was found.</summary>
    public bool Ok => Problems.Count == 0;
}
