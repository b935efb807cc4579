namespace OnnxAttribution.Runtime.Projection;

/// <summary>
/// One layer's Kronecker factors for a batch: the layer's inputs a (unfolded patches for a convolution) and the gradients
/// of the loss with respect to its outputs g, at S positions per example. The per-example weight gradient is
/// G = Σₛ gₛ aₛᵀ, shape [outDim, inDim].
/// </summary>
/// <param name="Activations">B × S × inDim values, row-major.</param>
/// <param name="OutputGradients">B × S × outDim values, row-major.</param>
/// <param name="Positions">S, the positions per example (1 for a linear layer on vectors, H·W for a convolution).</param>
public readonly record struct LayerFactors(ReadOnlyMemory<float> Activations, ReadOnlyMemory<float> OutputGradients, int Positions);
