namespace OnnxAttribution.Runtime.Projection;

/// <summary>How per-example gradients are turned into k-dimensional features.</summary>
public enum ProjectorKind
{
    /// <summary>JL projection of the whole flattened gradient (every parameter), generated on the fly.</summary>
    Dense,

    /// <summary>Per-layer Kronecker projection of the Conv/Gemm weight gradients from the graph's factor outputs
    /// (biases and normalisation parameters are not included).</summary>
    Factored,
}
