namespace OnnxAttribution.Runtime.Gradients;

/// <summary>The result of <see cref="ReferenceGradientCheck.Run"/>.</summary>
/// <param name="Model">The model folder checked.</param>
/// <param name="Timestep">The step of the reference example.</param>
/// <param name="ForwardMaxRelativeError">max |ε̂ ours − ε̂ reference| / max |ε̂ reference|.</param>
/// <param name="Tensors">Every parameter tensor both sides have, worst first.</param>
/// <param name="MissingGradients">Reference parameters that the gradient graph has no gradient for (not chosen as parameters).</param>
/// <param name="UnmatchedGradients">Gradient outputs with no reference: initializers taken as parameters that the reference holds frozen or not at all.</param>
/// <param name="ReferenceWithoutInitializer">Reference parameters that no initializer holds (the exporter folded them away).</param>
public sealed record ReferenceGradientReport(string Model, long Timestep, double ForwardMaxRelativeError, IReadOnlyList<ReferenceTensorError> Tensors,
    IReadOnlyList<string> MissingGradients, IReadOnlyList<string> UnmatchedGradients, IReadOnlyList<string> ReferenceWithoutInitializer)
{
    /// <summary>The bar for the forward output (relative to its largest magnitude).</summary>
    public const double ForwardBar = 1e-5;

    /// <summary>The bar for each tensor's gradient (relative to its largest magnitude).</summary>
    public const double GradientBar = 1e-4;

    /// <summary>
    /// The floor of a tensor's scale, as a fraction of the largest gradient magnitude in the model: a tensor whose true
    /// gradient is zero holds only float32 rounding noise on both sides, and a relative error against that noise says nothing.
    /// </summary>
    public const double VanishingFraction = 1e-3;

    /// <summary>The worst tensor, or null when none was compared.</summary>
    public ReferenceTensorError? Worst => Tensors.Count > 0 ? Tensors[0] : null;

    /// <summary>Whether every bar is met and every reference parameter has its gradient.</summary>
    public bool Passed => ForwardMaxRelativeError <= ForwardBar && Tensors.Count > 0 && Tensors.All(t => t.MaxRelativeError <= GradientBar)
        && MissingGradients.Count == 0;
}
