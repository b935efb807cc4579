namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// A method whose damping λ can change on a built store without featurizing again (the kernel inverse is rebuilt from
/// ΦᵀΦ, or λ acts at query time): what a damping sweep on validation queries needs.
/// </summary>
public interface IDampedMethod : IAttributionMethod
{
    /// <summary>
    /// The damping a build uses when <see cref="MethodSettings.Damping"/> is null: the λ chosen for this method on the
    /// validation queries of the LDS evaluation (docs/results/lds.json; docs/guides/evaluate.md).
    /// </summary>
    double DefaultDamping { get; }

    /// <summary>Makes the complete store in <paramref name="storeDirectory"/> score as if it had been built with <paramref name="relativeDamping"/>.</summary>
    /// <param name="storeDirectory">The method store.</param>
    /// <param name="relativeDamping">λ, relative as in <see cref="MethodSettings.Damping"/>.</param>
    /// <param name="grams">Gram matrices kept between calls of one sweep.</param>
    void Redamp(string storeDirectory, double relativeDamping, GramCache grams);
}
