namespace OnnxAttribution.Onnx.Differentiation;

/// <summary>What the gradient graph computes, besides the forward output.</summary>
public sealed record VjpOptions
{
    /// <summary>
    /// The initializers to differentiate with respect to. Null selects every float initializer that acts as a
    /// trainable parameter: Conv weights and biases, Gemm and MatMul weights, normalisation scales and biases,
    /// and non-scalar operands of Add/Sub/Mul/Div whose other operand depends on the graph's float inputs.
    /// </summary>
    public IReadOnlyList<string>? Parameters { get; init; }

    /// <summary>Emit <c>grad.&lt;param&gt;</c> [B, d0, rest]: the per-example gradient of ⟨cotangent, output⟩.</summary>
    public bool PerExampleGradients { get; init; } = true;

    /// <summary>Emit <c>a.&lt;layer&gt;</c> [B, S, in·k·k] and <c>g.&lt;layer&gt;</c> [B, S, out] for Conv, Gemm and MatMul layers.</summary>
    public bool KroneckerFactors { get; init; }

    /// <summary>Also emit <c>grad.&lt;input&gt;</c> for these float graph inputs (e.g. <c>x_t</c>).</summary>
    public IReadOnlyList<string> InputGradients { get; init; } = [];

    /// <summary>The name of the cotangent input (one per graph output; more outputs get a suffix).</summary>
    public string CotangentName { get; init; } = "cotangent";
}
