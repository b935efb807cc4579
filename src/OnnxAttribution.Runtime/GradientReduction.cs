namespace OnnxAttribution.Runtime;

/// <summary>Where an example's per-pair gradients are weighted, summed and projected to its k features.</summary>
public enum GradientReduction
{
    /// <summary>On the host with the CPU provider; in ONNX Runtime's graph (<see cref="Device"/>) with CUDA.</summary>
    Auto,

    /// <summary>
    /// The gradient graph's outputs come back to the host, which sums the pairs and projects: dense gradients through the
    /// sign tables (<see cref="Projection.SignTableProjector"/>). The CPU default: its bits are the stores' reference.
    /// </summary>
    Host,

    /// <summary>
    /// One run takes the clean image and its (t, ε) pairs and returns only the k features, the pairs' losses and the gradient's
    /// norm: x_t is formed, the pairs summed and the dense projection applied (P held as ONNX Runtime tensors, in GPU memory on
    /// CUDA) inside the graph. Agrees with <see cref="Host"/> to float32 rounding (the sums run in another order).
    /// </summary>
    Device,
}
