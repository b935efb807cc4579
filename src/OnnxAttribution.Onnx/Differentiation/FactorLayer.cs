namespace OnnxAttribution.Onnx.Differentiation;

/// <summary>A layer with Kronecker factors: its weight, positions per example S, and the weight matrix's in and out sizes.</summary>
public sealed record FactorLayer(string Layer, string Weight, long Positions, long InDim, long OutDim);
