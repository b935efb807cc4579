namespace OnnxAttribution.Onnx;

/// <summary>The operation count of one run of a graph (see <see cref="GraphCost.Count"/>).</summary>
/// <param name="MultiplyAddFlops">2 × the multiply-adds of Conv, ConvTranspose, Gemm, MatMul and Einsum: the work a machine's FMA peak measures.</param>
/// <param name="OtherFlops">One operation per output element of every other float node (element-wise ops, reductions, normalisations): a floor, not a count of their inner loops.</param>
/// <param name="ByOp">Multiply-add FLOPs per op type.</param>
/// <param name="Uncounted">Multiply-add nodes whose shapes are not known statically (their work is missing from the count).</param>
public sealed record GraphCostReport(double MultiplyAddFlops, double OtherFlops, IReadOnlyDictionary<string, double> ByOp, IReadOnlyList<string> Uncounted);
