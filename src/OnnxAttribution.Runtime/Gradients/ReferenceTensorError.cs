namespace OnnxAttribution.Runtime.Gradients;

/// <summary>One parameter tensor of a <see cref="ReferenceGradientCheck"/>: the derived graph's gradient against the reference's.</summary>
/// <param name="Initializer">The ONNX initializer (the gradient graph's <c>grad.</c> output).</param>
/// <param name="Parameter">The reference framework's name for it (e.g. PyTorch's state-dict name).</param>
/// <param name="Elements">Its number of elements.</param>
/// <param name="MaxRelativeError">max |ours − reference| / max(max |reference|, <see cref="ReferenceGradientReport.VanishingFraction"/> · the model's largest gradient).</param>
/// <param name="MaxAbsoluteError">max |ours − reference|.</param>
/// <param name="MaxReference">max |reference| over the tensor.</param>
/// <param name="Vanishing">The tensor's reference gradient is below the floor: its true gradient is zero (a bias that a following
/// normalisation or softmax removes) and both sides hold rounding noise, so the error is measured against the floor.</param>
public sealed record ReferenceTensorError(string Initializer, string Parameter, long Elements, double MaxRelativeError, double MaxAbsoluteError,
    double MaxReference, bool Vanishing);
