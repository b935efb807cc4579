namespace OnnxAttribution.Runtime.Models;

/// <summary>One trainable parameter of an exported model, in the order of <c>model.json</c>.</summary>
/// <param name="Name">The initializer name in forward.onnx and the TorchSharp parameter name.</param>
/// <param name="Shape">Its shape, e.g. [out, in, k, k] for a convolution weight.</param>
public sealed record ParameterInfo(string Name, long[] Shape);
