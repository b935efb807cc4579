namespace OnnxAttribution.Onnx.Differentiation;

/// <summary>One layer's Kronecker projection for <see cref="VjpOptions.FactorProjections"/>.</summary>
/// <param name="Layer">The layer's name (its weight's name without ".weight", as in the factor outputs a.&lt;layer&gt;).</param>
/// <param name="Input">P_in, inDim × kIn row-major; rows follow the weight's input order (in-channel · kh · kw + tap).</param>
/// <param name="InputDim">kIn.</param>
/// <param name="Output">P_out, outDim × kOut row-major.</param>
/// <param name="OutputDim">kOut.</param>
public sealed record FactorProjection(string Layer, float[] Input, int InputDim, float[] Output, int OutputDim);
