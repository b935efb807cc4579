using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx.Differentiation;

/// <summary>Rules for ops that move or select elements: Split, Gather, Tile, DepthToSpace, SpaceToDepth, CumSum, Einsum.</summary>
internal static partial class GradientRules
{
    /// <summary>Split: the parts' gradients concatenated back (zeros for a part nothing flows into).</summary>
    private static void Split(VjpContext c, NodeProto n)
    {
        if (!c.Needs(n, 0))
        {
            return;
        }
        var xs = c.Shape(n, n.Input[0]);
        long axis = Attr.GetInt(n, "axis", 0);
        axis = axis < 0 ? axis + xs.Length : axis;
        if (xs[axis] < 0)
        {
            throw Unsupported(n, "splitting the batch axis is not differentiable per example");
        }
        var parts = new string[n.Output.Count];
        for (int i = 0; i < parts.Length; i++)
        {
            parts[i] = c.GradOut(n, i) ?? c.Op("ConstantOfShape", [c.Op("Shape", [n.Output[i]], null)], c.Shapes.TryShape(n.Output[i]),
                Attr.Tensor("value", TensorData.FromFloats("zero", [0f], 1)));
        }
        c.Contribute(n, 0, parts.Length == 1 ? parts[0] : c.Op("Concat", parts, xs, Attr.Int("axis", axis)));
    }

    /// <summary>
    /// Gather. With constant indices the data's gradient is a product with a constant one-hot matrix (a parameter gathered
    /// at fixed rows is a view, handled by <see cref="VjpContext.AddParameterGradient"/>). An embedding table looked up by
    /// per-example indices [B, …] gets per-example gradients OneHot(indices)ᵀ·g.
    /// </summary>
    private static void Gather(VjpContext c, NodeProto n)
    {
        if (!c.Needs(n, 0) || c.GradOut(n) is not { } g)
        {
            return;
        }
        string table = n.Input[0], indices = n.Input[1];
        if (c.Shapes.TryIntConstant(indices) is not null)
        {
            c.Contribute(n, 0, c.GatherGradient(n, g, perExample: false));
            return;
        }
        var ts = c.Shape(n, table);
        var ind = c.Shape(n, indices);
        long axis = Attr.GetInt(n, "axis", 0);
        if ((axis != 0 && axis != -ts.Length) || ts.Any(d => d < 0))
        {
            throw Unsupported(n, "with indices computed from the data, only a gather of rows (axis 0) of a table of static shape is differentiable");
        }
        long rows = ts[0], width = ShapeInference.Product(ts[1..]);
        long picks = ShapeInference.Product(ind.Where(d => d >= 0));
        string oneHot = c.Op("OneHot", [indices, c.Ints(rows), c.B.Constant("onehot_values", [0f, 1f], 2)], null, Attr.Int("axis", -1));
        if (c.IsParameter(table))
        {
            if (ind.Length == 0 || ind[0] != ShapeInference.Batch || ind.Skip(1).Any(d => d < 0))
            {
                throw Unsupported(n, $"per-example gradients of table '{table}' need indices shaped [batch, …] (found [{string.Join(",", ind)}])");
            }
            string oh = c.Transpose(c.ReshapePerExample(oneHot, [picks, rows]), [ShapeInference.Batch, picks, rows], 0, 2, 1);
            string gr = c.ReshapePerExample(g, [picks, width]);
            c.AddParameterGradient(table, c.ReshapePerExample(c.Op("MatMul", [oh, gr], [ShapeInference.Batch, rows, width]), ts));
            return;
        }
        string flatOneHot = c.Transpose(c.Op("Reshape", [oneHot, c.Ints(-1, rows)], null), null, 1, 0);
        string flatG = c.Op("Reshape", [g, c.Ints(-1, width)], null);
        c.Contribute(n, 0, c.ReshapeTo(c.Op("MatMul", [flatOneHot, flatG], [rows, width]), ts));
    }

    /// <summary>Tile: the sum of the gradient over the copies (reshaped to [r₀, d₀, r₁, d₁, …], summed over the r axes).</summary>
    private static void Tile(VjpContext c, NodeProto n)
    {
        if (!c.Needs(n, 0) || c.GradOut(n) is not { } g)
        {
            return;
        }
        var xs = c.Shape(n, n.Input[0]);
        var repeats = c.Shapes.TryIntConstant(n.Input[1]) ?? throw Unsupported(n, "the repeats must be constant");
        if (xs.Where((d, i) => d < 0 && repeats[i] != 1).Any())
        {
            throw Unsupported(n, "tiling the batch axis mixes examples");
        }
        var split = xs.SelectMany((d, i) => new[] { repeats[i], d }).ToArray();
        string r = c.Op("Reshape", [g, c.Ints(split)], split);
        var axes = Enumerable.Range(0, xs.Length).Select(i => 2L * i).ToArray();
        c.Contribute(n, 0, c.ReduceSum(r, axes, false, xs));
    }

    /// <summary>DepthToSpace (DCR: its inverse is SpaceToDepth; CRD: the inverse reshape and transpose).</summary>
    private static void DepthToSpace(VjpContext c, NodeProto n) => Unary(c, n, g =>
    {
        var xs = c.Shape(n, n.Input[0]);
        long bs = Attr.GetInt(n, "blocksize", 1);
        if (Attr.GetString(n, "mode", "DCR") == "DCR")
        {
            return c.Op("SpaceToDepth", [g], xs, Attr.Int("blocksize", bs));
        }
        long channels = xs[1] / (bs * bs);
        string r = c.ReshapePerExample(g, [channels, xs[2], bs, xs[3], bs]);
        string t = c.Transpose(r, [ShapeInference.Batch, channels, xs[2], bs, xs[3], bs], 0, 1, 3, 5, 2, 4);
        return c.ReshapePerExample(t, xs[1..]);
    });

    /// <summary>SpaceToDepth: its inverse is DepthToSpace in DCR mode.</summary>
    private static void SpaceToDepth(VjpContext c, NodeProto n) => Unary(c, n, g =>
        c.Op("DepthToSpace", [g], c.Shapes.TryShape(n.Input[0]), Attr.Int("blocksize", Attr.GetInt(n, "blocksize", 1)), Attr.String("mode", "DCR")));

    /// <summary>CumSum: the cumulative sum of the gradient in the other direction.</summary>
    private static void CumSum(VjpContext c, NodeProto n)
    {
        if (c.Needs(n, 1))
        {
            throw Unsupported(n, "the axis input cannot depend on a differentiated value");
        }
        Unary(c, n, g => c.Op("CumSum", [g, n.Input[1]], null,
            Attr.Int("exclusive", Attr.GetInt(n, "exclusive", 0)), Attr.Int("reverse", Attr.GetInt(n, "reverse", 0) != 0 ? 0 : 1)));
    }

    /// <summary>
    /// Einsum without ellipsis or repeated indices in a term: an input's gradient is the Einsum of the output gradient with
    /// the other inputs, into the input's term. A parameter's per-example gradient keeps the batch index (the first index
    /// of an input whose axis 0 is the batch) in front.
    /// </summary>
    private static void Einsum(VjpContext c, NodeProto n)
    {
        if (c.GradOut(n) is not { } g)
        {
            return;
        }
        var (terms, output) = ShapeInference.EinsumTerms(n) ?? throw Unsupported(n, "equations with an ellipsis (...) are not supported");
        if (terms.Any(t => t.Distinct().Count() != t.Length) || output.Distinct().Count() != output.Length)
        {
            throw Unsupported(n, "an index repeated within one term (a diagonal or trace) is not supported");
        }
        char? batch = null;
        for (int i = 0; i < terms.Length; i++)
        {
            if (terms[i].Length > 0 && c.Shape(n, n.Input[i])[0] == ShapeInference.Batch)
            {
                batch = terms[i][0];
                break;
            }
        }
        for (int i = 0; i < terms.Length; i++)
        {
            if (!c.Needs(n, i))
            {
                continue;
            }
            var others = Enumerable.Range(0, terms.Length).Where(j => j != i).ToArray();
            string available = output + string.Concat(others.Select(j => terms[j]));
            if (terms[i].Any(ch => !available.Contains(ch)))
            {
                throw Unsupported(n, $"input {i} ('{terms[i]}') has an index summed within itself alone; not supported");
            }
            string[] inputs = [g, .. others.Select(j => n.Input[j])];
            string lhs = string.Join(",", [output, .. others.Select(j => terms[j])]);
            var xs = c.Shape(n, n.Input[i]);
            if (c.IsParameter(n.Input[i]))
            {
                if (batch is not { } b || !output.Contains(b) || terms[i].Contains(b))
                {
                    throw Unsupported(n, $"parameter '{n.Input[i]}': its per-example gradient needs the batch index in the output and not in its own term");
                }
                c.AddParameterGradient(n.Input[i], c.Op("Einsum", inputs, [ShapeInference.Batch, .. xs], Attr.String("equation", $"{lhs}->{b}{terms[i]}")));
            }
            else
            {
                c.Contribute(n, i, c.Op("Einsum", inputs, xs, Attr.String("equation", $"{lhs}->{terms[i]}")));
            }
        }
    }
}
