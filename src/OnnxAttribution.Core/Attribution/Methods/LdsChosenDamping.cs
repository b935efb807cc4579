namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// Each damped method's default λ (relative, as <see cref="MethodSettings.Damping"/>): the value the LDS evaluation chose on its
/// validation queries from the decades 1e-6 … 1e3 (docs/results/lds.json, docs/guides/evaluate.md; the fast recipe's
/// model, N = 1000). Relative to the kernel's mean diagonal, so it does not depend on the features' scale; another
/// model may prefer another λ, which the same evaluation measures.
/// </summary>
internal static class LdsChosenDamping
{
    /// <summary>TRAK (loss gradients).</summary>
    public const double Trak = 10;

    /// <summary>D-TRAK (squared output norm).</summary>
    public const double DTrak = 1e-1;

    /// <summary>DAS.</summary>
    public const double Das = 1e-2;

    /// <summary>Journey-TRAK (chosen on its final-image LDS).</summary>
    public const double JourneyTrak = 1e-1;

    /// <summary>K-FAC (relative to each layer's mean eigenvalue).</summary>
    public const double Kfac = 10;

    /// <summary>EK-FAC (relative to each layer's mean eigenvalue).</summary>
    public const double Ekfac = 10;
}
