using OnnxAttribution.Onnx.Differentiation;
using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx;

/// <summary>
/// Counts the floating-point operations of one run of an ONNX graph from its static shapes (the batch axis set to a given
/// size): what featurization's share of the machine's FMA peak is measured against.
/// </summary>
public static class GraphCost
{
    /// <summary>Counts the operations of one run with the batch axis at <paramref name="batch"/>.</summary>
    /// <param name="model">The graph.</param>
    /// <param name="batch">The size of the symbolic batch axis.</param>
    /// <param name="outputs">Count only the nodes these outputs need (ONNX Runtime runs no others); null for every node.</param>
    /// <exception cref="OnnxGraphException">The model cannot be converted to the opsets the shape inference reads.</exception>
    public static GraphCostReport Count(ModelProto model, long batch = 1, IReadOnlyCollection<string>? outputs = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        model = OpsetAdapter.Convert(model);
        var shapes = new ShapeInference(model.Graph, OpsetAdapter.OpsetOf(model));
        var needed = outputs is null ? null : Needed(model.Graph, outputs);
        long[]? S(NodeProto n, int i) => i < n.Input.Count && n.Input[i].Length > 0 ? shapes.TryShape(n.Input[i]) : null;
        double Elements(long[] shape) => shape.Aggregate(1.0, (a, d) => a * (d < 0 ? batch : d));
        var byOp = new Dictionary<string, double>(StringComparer.Ordinal);
        var uncounted = new List<string>();
        double other = 0;
        foreach (var node in model.Graph.Node.Where(n => needed is null || needed.Contains(n)))
        {
            var output = node.Output.Count > 0 && node.Output[0].Length > 0 ? shapes.TryShape(node.Output[0]) : null;
            double? macs = node.OpType switch
            {
                // Each output element sums C_in/group · kernel products (ConvTranspose: each input element spreads C_out/group · kernel).
                "Conv" when output is not null && S(node, 1) is { } w => Elements(output) * Elements(w[1..]),
                "ConvTranspose" when S(node, 0) is { } x && S(node, 1) is { } w => Elements(x) * Elements(w[1..]),
                "Gemm" when output is not null && S(node, 0) is { } a => Elements(output) * Elements([Attr.GetInt(node, "transA", 0) != 0 ? a[0] : a[1]]),
                "MatMul" when output is not null && S(node, 0) is { Length: >= 1 } a => Elements(output) * (a[^1] < 0 ? batch : a[^1]),
                "Einsum" when output is not null => EinsumMacs(node, shapes, batch),
                "Conv" or "ConvTranspose" or "Gemm" or "MatMul" or "Einsum" => null,
                _ => 0,
            };
            if (macs is null)
            {
                uncounted.Add(VjpBuilder.NodeLabel(node));
                continue;
            }
            if (macs > 0)
            {
                byOp[node.OpType] = byOp.GetValueOrDefault(node.OpType) + 2 * macs.Value;
            }
            else if (output is not null && shapes.ElemType(node.Output[0]) is TensorData.Float && node.OpType is not ("Shape" or "Constant" or "Identity"
                or "Reshape" or "Flatten" or "Squeeze" or "Unsqueeze" or "Transpose" or "Concat" or "Slice" or "Gather" or "Split" or "Expand"))
            {
                other += Elements(output);
            }
        }
        return new GraphCostReport(byOp.Values.Sum(), other, byOp, uncounted);
    }

    /// <summary>The nodes that the given outputs depend on.</summary>
    private static HashSet<NodeProto> Needed(GraphProto graph, IReadOnlyCollection<string> outputs)
    {
        var producer = new Dictionary<string, NodeProto>(StringComparer.Ordinal);
        foreach (var node in graph.Node)
        {
            foreach (var o in node.Output.Where(o => o.Length > 0))
            {
                producer[o] = node;
            }
        }
        var needed = new HashSet<NodeProto>();
        var pending = new Stack<string>(outputs);
        while (pending.Count > 0)
        {
            if (producer.TryGetValue(pending.Pop(), out var node) && needed.Add(node))
            {
                foreach (var i in node.Input.Where(i => i.Length > 0))
                {
                    pending.Push(i);
                }
            }
        }
        return needed;
    }

    /// <summary>An Einsum's multiply-adds as a direct contraction does them: the product of the sizes of every index in its terms.</summary>
    private static double? EinsumMacs(NodeProto node, ShapeInference shapes, long batch)
    {
        if (ShapeInference.EinsumTerms(node) is not { } terms)
        {
            return null;
        }
        if (terms.Inputs.Length < 2)
        {
            return 0; // a transpose or a reduction: no multiply-adds
        }
        var sizes = new Dictionary<char, long>();
        for (int i = 0; i < terms.Inputs.Length && i < node.Input.Count; i++)
        {
            if (shapes.TryShape(node.Input[i]) is not { } s || s.Length != terms.Inputs[i].Length)
            {
                return null;
            }
            for (int j = 0; j < s.Length; j++)
            {
                sizes[terms.Inputs[i][j]] = Math.Max(sizes.GetValueOrDefault(terms.Inputs[i][j], 1), s[j] < 0 ? batch : s[j]);
            }
        }
        return sizes.Values.Aggregate(1.0, (a, d) => a * d);
    }
}
