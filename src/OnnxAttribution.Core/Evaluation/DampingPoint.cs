namespace OnnxAttribution.Core.Evaluation;

/// <summary>One damping value of a sweep with its mean LDS on the validation queries.</summary>
/// <param name="Damping">λ, relative to the method's curvature scale.</param>
/// <param name="ValidationLds">Mean LDS over the validation queries at that λ.</param>
public readonly record struct DampingPoint(double Damping, double ValidationLds);
