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

    /// <summary>
    /// Layers whose weight gradients are projected inside the graph: one output <see cref="VjpBuilder.ProjectedFactorsOutput"/>
    /// [B, Σ kOut·kIn] holding, per layer in this list's order, vec(P_outᵀ G P_in) with G = Σₛ gₛ aₛᵀ the per-example weight
    /// gradient (element o·kIn + i). The factors are never materialised: for a convolution P_inᵀaₛ is itself a convolution of
    /// the layer's input with P_in's columns as filters. When neither per-example gradients nor factors are asked for, only
    /// these layers' weights are differentiated (biases and normalisation parameters would be computed for nothing).
    /// </summary>
    public IReadOnlyList<FactorProjection>? FactorProjections { get; init; }

    /// <summary>
    /// The graph output to differentiate. Null takes the only output (a model with several outputs must name one); the
    /// gradient graph keeps only this output of the forward graph.
    /// </summary>
    public string? Output { get; init; }

    /// <summary>Also emit <c>grad.&lt;input&gt;</c> for these float graph inputs (e.g. <c>x_t</c>).</summary>
    public IReadOnlyList<string> InputGradients { get; init; } = [];

    /// <summary>The name of the cotangent input (one per graph output; more outputs get a suffix).</summary>
    public string CotangentName { get; init; } = "cotangent";

    /// <summary>
    /// Compute the cotangent inside the graph from the output y it has just computed, instead of taking it as an input:
    /// cotangent = w₀·y + w₁·target + w₂, with inputs <see cref="TargetName"/> (shaped like y) and <see cref="WeightsName"/> [3].
    /// Every measurement whose cotangent is affine in y and a target then needs one run (no separate forward pass to
    /// learn y first): the diffusion loss ‖ε − ε̂‖²/D is (2/D, −2/D, 0) with target ε, the squared norm (2/D, 0, 0), the
    /// mean (0, 0, 1/D); an explicit cotangent c is (0, 1, 0) with target c.
    /// </summary>
    public bool CotangentFromOutput { get; init; }

    /// <summary>The target input of <see cref="CotangentFromOutput"/>.</summary>
    public string TargetName { get; init; } = "target";

    /// <summary>The weights input [3] of <see cref="CotangentFromOutput"/>.</summary>
    public string WeightsName { get; init; } = "cotangent_weights";
}
