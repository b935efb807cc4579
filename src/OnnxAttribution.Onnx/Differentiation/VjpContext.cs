using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx.Differentiation;

/// <summary>The Kronecker factors of one layer: inputs a [B, S, InDim] and output gradients g [B, S, OutDim].</summary>
internal sealed record FactorPair(string Layer, string A, string G, long Positions, long InDim, long OutDim);

/// <summary>
/// A value that is a parameter seen through ops that only move, retype or select its elements (Identity, Cast to float,
/// Dropout, Transpose, Reshape, Flatten, Squeeze, Unsqueeze, Gather with constant indices): PyTorch's Linear as
/// MatMul(x, Transpose(W)), a weight cast or reshaped on its way, a positional table gathered at fixed rows.
/// </summary>
/// <param name="Root">The initializer the view reads.</param>
/// <param name="Chain">The ops from the root to the view, in forward order.</param>
internal sealed record ParameterView(string Root, IReadOnlyList<NodeProto> Chain)
{
    /// <summary>Whether the view holds the root's values unchanged (the same layout), so that its Kronecker factors are the root's.</summary>
    public bool SameLayout => Chain.All(n => n.OpType is "Identity" or "Dropout" or "Cast");

    /// <summary>The views among the graph's values of the roots <paramref name="isRoot"/> accepts.</summary>
    public static Dictionary<string, ParameterView> Find(IEnumerable<NodeProto> nodes, Func<string, bool> isRoot, ShapeInference shapes)
    {
        var views = new Dictionary<string, ParameterView>(StringComparer.Ordinal);
        foreach (var n in nodes)
        {
            if (n.Input.Count == 0 || n.Output.Count == 0 || (n.Domain.Length > 0 && n.Domain != "ai.onnx") || !IsViewOp(n, shapes))
            {
                continue;
            }
            string x = n.Input[0];
            ParameterView? from = views.GetValueOrDefault(x) ?? (isRoot(x) ? new ParameterView(x, []) : null);
            if (from is not null)
            {
                views[n.Output[0]] = new ParameterView(from.Root, [.. from.Chain, n]);
            }
        }
        return views;
    }

    private static bool IsViewOp(NodeProto n, ShapeInference shapes) => n.OpType switch
    {
        "Identity" or "Flatten" or "Transpose" => true,
        "Dropout" => n.Output.Skip(1).All(o => o.Length == 0),
        "Cast" => Attr.GetInt(n, "to", 0) == TensorData.Float,
        "Reshape" or "Squeeze" or "Unsqueeze" => n.Input.Skip(1).All(i => i.Length == 0 || shapes.TryIntConstant(i) is not null),
        "Gather" => n.Input.Count > 1 && shapes.TryIntConstant(n.Input[1]) is not null,
        _ => false,
    };
}

/// <summary>
/// State of one reverse pass: gradient contributions per value (summed lazily), per-example parameter
/// gradients, factors, and helpers that emit ONNX nodes and record their shapes.
/// </summary>
internal sealed class VjpContext
{
    private readonly Dictionary<string, List<string>> _grads = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<string>> _paramGrads = new(StringComparer.Ordinal);
    private readonly HashSet<string> _params;
    private readonly HashSet<string> _active;
    private readonly Dictionary<string, FactorProjection> _projections;
    private readonly Dictionary<string, string> _projected = new(StringComparer.Ordinal);

    private readonly Dictionary<string, ParameterView> _views;

    public VjpContext(GraphBuilder builder, ShapeInference shapes, int opset, HashSet<string> parameters, HashSet<string> active, VjpOptions options,
        IEnumerable<NodeProto> forwardNodes)
    {
        _views = ParameterView.Find(forwardNodes, parameters.Contains, shapes);
        B = builder;
        Shapes = shapes;
        Opset = opset;
        _params = parameters;
        _active = active;
        Options = options;
        _projections = (options.FactorProjections ?? []).ToDictionary(p => p.Layer, StringComparer.Ordinal);
    }

    public GraphBuilder B { get; }

    public ShapeInference Shapes { get; }

    public int Opset { get; }

    public VjpOptions Options { get; }

    public List<FactorPair> Factors { get; } = [];

    /// <summary>The value holding the cotangent of the output: the cotangent input, or its in-graph computation.</summary>
    public string Cotangent { get; set; } = "";

    /// <summary>Whether the value is a differentiated parameter or a view of one (<see cref="ParameterView"/>).</summary>
    public bool IsParameter(string name) => _params.Contains(name) || _views.ContainsKey(name);

    /// <summary>Whether input <paramref name="index"/> of the node needs a gradient.</summary>
    public bool Needs(NodeProto node, int index) => index < node.Input.Count && node.Input[index].Length > 0 && _active.Contains(node.Input[index]);

    public bool HasGradient(string name) => _grads.ContainsKey(name);

    public void AddGradient(string name, string gradient)
    {
        if (!_grads.TryGetValue(name, out var list))
        {
            _grads[name] = list = [];
        }
        list.Add(gradient);
    }

    /// <summary>The total gradient of a value, or null when nothing flows into it.</summary>
    public string? SumGradient(string name) => Sum(_grads, name, Shapes.TryShape(name));

    public string? ParameterGradient(string name) => Sum(_paramGrads, name, null);

    /// <summary>The gradient of output <paramref name="index"/> of the node, or null.</summary>
    public string? GradOut(NodeProto node, int index = 0) => index < node.Output.Count ? SumGradient(node.Output[index]) : null;

    /// <summary>The static shape of a value; a rule that needs it fails with the node named when it is unknown.</summary>
    public long[] Shape(NodeProto node, string name)
    {
        if (Shapes.TryShape(name) is { } shape)
        {
            return shape;
        }
        string needed = $"the shape of '{name}', needed by node '{VjpBuilder.NodeLabel(node)}' ({node.OpType}), cannot be inferred statically";
        throw Shapes.Blocker(name) is { OpType: { } op, NodeName: { } blocker } b
            ? new UnsupportedOperatorException(op, blocker, $"{needed}: {b.Detail}")
            : new UnsupportedOperatorException(node.OpType, VjpBuilder.NodeLabel(node), Shapes.Blocker(name) is { } why ? $"{needed}: {why.Detail}" : needed);
    }

    /// <summary>Adds a node and records its output shape.</summary>
    public string Op(string opType, string[] inputs, long[]? shape, params AttributeProto[] attributes)
    {
        string o = B.Node(opType, inputs, null, attributes);
        if (shape is not null)
        {
            Shapes.Set(o, shape);
        }
        return o;
    }

    public string Scalar(float value) => B.Scalar("c", value);

    public string Ints(params long[] values) => B.ConstantInt64("c", values);

    public string Mul(string a, string b, long[]? shape) => Op("Mul", [a, b], shape);

    public string Transpose(string x, long[]? shape, params long[] perm) =>
        Op("Transpose", [x], shape is null ? null : perm.Select(p => shape[p]).ToArray(), Attr.Ints("perm", perm));

    public string Unsqueeze(string x, long[]? shape, params long[] axes)
    {
        long[]? result = null;
        if (shape is not null)
        {
            var list = shape.ToList();
            foreach (var a in axes.Order())
            {
                list.Insert((int)a, 1);
            }
            result = list.ToArray();
        }
        return Op("Unsqueeze", [x, Ints(axes)], result);
    }

    /// <summary>ReduceSum with axes as an input (opset 13+).</summary>
    public string ReduceSum(string x, long[] axes, bool keepDims, long[]? shape) =>
        Op("ReduceSum", [x, Ints(axes)], shape, Attr.Int("keepdims", keepDims ? 1 : 0));

    /// <summary>ReduceMean, with axes as an input from opset 18 and as an attribute before.</summary>
    public string ReduceMean(string x, long[] axes, bool keepDims, long[]? shape) =>
        Opset >= 18
            ? Op("ReduceMean", [x, Ints(axes)], shape, Attr.Int("keepdims", keepDims ? 1 : 0))
            : Op("ReduceMean", [x], shape, Attr.Ints("axes", axes), Attr.Int("keepdims", keepDims ? 1 : 0));

    /// <summary>Reshapes to a static shape whose batch dimension (if any) is written -1.</summary>
    public string ReshapeTo(string x, long[] shape) => Op("Reshape", [x, Ints(shape)], shape);

    /// <summary>Reshapes to [B, …rest], copying the batch dimension from axis 0 of <paramref name="x"/>.</summary>
    public string ReshapePerExample(string x, long[] rest) => Op("Reshape", [x, Ints([0, .. rest])], [ShapeInference.Batch, .. rest]);

    /// <summary>Reshapes to the runtime shape of <paramref name="like"/>.</summary>
    public string ReshapeLike(string x, string like) =>
        Op("Reshape", [x, Op("Shape", [like], null)], Shapes.TryShape(like));

    /// <summary>Records the gradient of a non-parameter input; a parameter here is an unsupported use.</summary>
    public void Contribute(NodeProto node, int index, string gradient)
    {
        string input = node.Input[index];
        if (IsParameter(input))
        {
            string seen = _views.TryGetValue(input, out var view) ? $" (a view of parameter '{view.Root}')" : "";
            throw new UnsupportedOperatorException(node.OpType, VjpBuilder.NodeLabel(node),
                $"parameter '{input}'{seen} is input {index} of this op; per-example gradients are defined for Conv and Gemm/MatMul weights and biases, " +
                "normalisation scales and biases, embedding tables (Gather), and broadcast operands of Add/Sub/Mul/Div");
        }
        AddGradient(input, gradient);
    }

    /// <summary>Records the gradient of input <paramref name="index"/> of a broadcasting op, summing over broadcast axes.</summary>
    public void ContributeBroadcast(NodeProto node, int index, string gradient, long[] gradientShape)
    {
        string input = node.Input[index];
        var target = Shape(node, input);
        if (IsParameter(input))
        {
            AddParameterGradient(input, Unbroadcast(node, gradient, gradientShape, target, perExample: true));
        }
        else
        {
            AddGradient(input, Unbroadcast(node, gradient, gradientShape, target, perExample: false));
        }
    }

    /// <summary>Records a per-example gradient [B, …shape] of a parameter or of a view of one (taken back through the view's ops to its root).</summary>
    public void AddParameterGradient(string parameter, string perExampleGradient)
    {
        if (_views.TryGetValue(parameter, out var view))
        {
            for (int i = view.Chain.Count - 1; i >= 0; i--)
            {
                perExampleGradient = ThroughView(view.Chain[i], perExampleGradient);
            }
            parameter = view.Root;
        }
        _ = Add(_paramGrads, parameter, perExampleGradient);
    }

    /// <summary>The per-example gradient of a view op's input from that of its output.</summary>
    private string ThroughView(NodeProto n, string g)
    {
        var xs = Shape(n, n.Input[0]);
        switch (n.OpType)
        {
            case "Identity" or "Dropout" or "Cast":
                return g;
            case "Transpose":
                {
                    var perm = Attr.GetInts(n, "perm") ?? Enumerable.Range(0, xs.Length).Reverse().Select(i => (long)i).ToArray();
                    var inverse = new long[perm.Length + 1];
                    for (int i = 0; i < perm.Length; i++)
                    {
                        inverse[perm[i] + 1] = i + 1;
                    }
                    return Transpose(g, null, inverse);
                }
            case "Gather":
                return GatherGradient(n, g, perExample: true);
            default:
                return ReshapePerExample(g, xs);
        }
    }

    /// <summary>
    /// The gradient of Gather's data input from its output gradient <paramref name="g"/> when the indices are constant: a
    /// product with the constant one-hot matrix [rows, indices] along the gathered axis. Per-example: <paramref name="g"/> is
    /// [B, …output] and the result [B, …data]; otherwise the data's batch axis (if any) lies before the gathered axis.
    /// </summary>
    public string GatherGradient(NodeProto n, string g, bool perExample)
    {
        var xs = Shape(n, n.Input[0]);
        long axis = Attr.GetInt(n, "axis", 0);
        axis = axis < 0 ? axis + xs.Length : axis;
        var indices = Shapes.TryIntConstant(n.Input[1])
            ?? throw new UnsupportedOperatorException(n.OpType, VjpBuilder.NodeLabel(n), "the indices must be constant here");
        long rows = xs[axis];
        if (rows < 0 || (!perExample && axis == 0 && xs[0] < 0))
        {
            throw new UnsupportedOperatorException(n.OpType, VjpBuilder.NodeLabel(n), "gathering along the batch axis mixes examples");
        }
        var oneHot = new float[checked((int)(rows * indices.Length))];
        for (int j = 0; j < indices.Length; j++)
        {
            long r = indices[j] < 0 ? indices[j] + rows : indices[j];
            if (r < 0 || r >= rows)
            {
                throw new UnsupportedOperatorException(n.OpType, VjpBuilder.NodeLabel(n), $"index {indices[j]} is outside 0..{rows - 1}");
            }
            oneHot[r * indices.Length + j] = 1f;
        }
        string m = B.Constant("gather_onehot", oneHot, rows, indices.Length);
        long after = ShapeInference.Product(xs[((int)axis + 1)..]);
        if (perExample)
        {
            long before = ShapeInference.Product(xs[..(int)axis]);
            string gr = ReshapePerExample(g, [before, indices.Length, after]);
            return ReshapePerExample(Op("MatMul", [m, gr], [ShapeInference.Batch, before, rows, after]), xs);
        }
        // The batch (if any) lies before the gathered axis: fold everything before it into the leading dimension.
        string flat = Op("Reshape", [g, Ints(-1, indices.Length, after)], null);
        return ReshapeLike(Op("MatMul", [m, flat], null), n.Input[0]);
    }

    /// <summary>
    /// The gradient of an op that makes each of its outputs along one axis a weighted sum of the input's entries along it
    /// (a selection, a padding, an interpolation): the product with <paramref name="matrix"/> [rows, count] (row-major, the
    /// input's entry r by output position j) along <paramref name="axis"/> of <paramref name="g"/>, shaped <paramref name="gShape"/>.
    /// The batch, if any, must lie before the axis.
    /// </summary>
    public string AlongAxis(NodeProto node, string g, long[] gShape, int axis, float[] matrix, long rows)
    {
        long count = gShape[axis];
        long after = ShapeInference.Product(gShape[(axis + 1)..]);
        if (after < 0 || count < 0 || gShape[..axis].Count(d => d < 0) > 1)
        {
            throw new UnsupportedOperatorException(node.OpType, VjpBuilder.NodeLabel(node), $"axis {axis} of [{string.Join(",", gShape)}]: the batch must lie before it");
        }
        string m = B.Constant("axis_map", matrix, rows, count);
        string flat = Op("Reshape", [g, Ints(-1, count, after)], null);
        var result = (long[])gShape.Clone();
        result[axis] = rows;
        return ReshapeTo(Op("MatMul", [m, flat], null), result);
    }

    /// <summary>The one-hot matrix [rows, sources.Length] of <see cref="AlongAxis"/>: output j reads row sources[j] (none when negative).</summary>
    public static float[] SelectionMatrix(long rows, IReadOnlyList<long> sources)
    {
        var m = new float[checked((int)(rows * sources.Count))];
        for (int j = 0; j < sources.Count; j++)
        {
            if (sources[j] >= 0)
            {
                m[sources[j] * sources.Count + j] += 1f;
            }
        }
        return m;
    }

    /// <summary>The initializer whose Kronecker factors a weight's layer gets: the weight, or the root of a view that keeps its layout.</summary>
    private string FactorWeight(string weight)
    {
        if (!_views.TryGetValue(weight, out var view))
        {
            return weight;
        }
        if (!view.SameLayout)
        {
            throw new OnnxGraphException($"weight '{view.Root}' reaches its layer through {string.Join(", ", view.Chain.Select(n => n.OpType))}: " +
                "Kronecker factors and factored projections need the weight in its own layout (per-example gradients work)");
        }
        return view.Root;
    }

    public void AddFactors(string weight, string a, string g, long positions, long inDim, long outDim)
    {
        weight = FactorWeight(weight);
        if (Factors.Any(f => f.Layer == LayerName(weight)))
        {
            throw new OnnxGraphException($"weight '{weight}' is used by more than one layer; Kronecker factors need one use per weight");
        }
        string layer = LayerName(weight);
        string an = B.Node("Identity", [a], B.Fresh("a." + layer));
        string gn = B.Node("Identity", [g], B.Fresh("g." + layer));
        Factors.Add(new FactorPair(layer, an, gn, positions, inDim, outDim));
    }

    /// <summary>The in-graph projection of <paramref name="weight"/>'s layer (<see cref="VjpOptions.FactorProjections"/>), or null.</summary>
    public FactorProjection? ProjectionOf(string weight)
    {
        string root = _views.TryGetValue(weight, out var view) ? view.Root : weight;
        if (!_projections.TryGetValue(LayerName(root), out var p))
        {
            return null;
        }
        _ = FactorWeight(weight); // a view in another layout cannot be projected: say so
        return p;
    }

    /// <summary>The projected block [B, kOut·kIn] recorded for a layer, or null.</summary>
    public string? ProjectedBlock(string layer) => _projected.GetValueOrDefault(layer);

    /// <summary>A layer's P_in (inDim × kIn) as a constant, checked against the layer's size; transposed to kIn × inDim when asked.</summary>
    public string InputProjection(string weight, long inDim, bool transposed, params long[] dims)
    {
        var p = ProjectionOf(weight)!;
        return ProjectionConstant(weight, "p_in", p.Input, inDim, p.InputDim, transposed, dims);
    }

    /// <summary>A layer's P_out (outDim × kOut) as a constant, checked against the layer's size; transposed to kOut × outDim when asked.</summary>
    public string OutputProjection(string weight, long outDim, bool transposed, params long[] dims)
    {
        var p = ProjectionOf(weight)!;
        return ProjectionConstant(weight, "p_out", p.Output, outDim, p.OutputDim, transposed, dims);
    }

    /// <summary>
    /// Records a layer's projected weight gradient Y = (P_outᵀ g)(P_inᵀ a)ᵀ summed over positions, from its projected output
    /// gradients <paramref name="gT"/> [B, kOut, S] and projected inputs <paramref name="a"/> [B, S, kIn].
    /// </summary>
    public void AddProjectedFactors(string weight, string gT, string a)
    {
        weight = FactorWeight(weight);
        string layer = LayerName(weight);
        if (_projected.ContainsKey(layer))
        {
            throw new OnnxGraphException($"weight '{weight}' is used by more than one layer; a factored projection needs one use per weight");
        }
        var p = ProjectionOf(weight)!;
        string y = Op("MatMul", [gT, a], [ShapeInference.Batch, p.OutputDim, p.InputDim]);
        _projected[layer] = ReshapePerExample(y, [(long)p.OutputDim * p.InputDim]);
    }

    /// <summary>Zeros shaped [B, …shape], for a parameter the output does not depend on.</summary>
    public string ZerosPerExample(long[] shape)
    {
        string batch = Op("Slice", [Op("Shape", [Cotangent], null), Ints(0), Ints(1)], null);
        string full = Op("Concat", [batch, Ints(shape)], null, Attr.Int("axis", 0));
        return Op("ConstantOfShape", [full], null, Attr.Tensor("value", TensorData.FromFloats("zero", [0f], 1)));
    }

    public static string LayerName(string weight) => weight.EndsWith(".weight", StringComparison.Ordinal) ? weight[..^".weight".Length] : weight;

    /// <summary>
    /// Sums <paramref name="g"/> (shaped <paramref name="gShape"/>) over the axes along which <paramref name="target"/> was broadcast.
    /// Per-example: axis 0 is kept and the result is shaped [B, …target].
    /// </summary>
    public string Unbroadcast(NodeProto node, string g, long[] gShape, long[] target, bool perExample)
    {
        int off = gShape.Length - target.Length;
        if (off < 0)
        {
            throw new UnsupportedOperatorException(node.OpType, VjpBuilder.NodeLabel(node), "an input has a higher rank than the output");
        }
        if (perExample && (gShape.Length == 0 || (off == 0 && target[0] != 1)))
        {
            throw new UnsupportedOperatorException(node.OpType, VjpBuilder.NodeLabel(node),
                $"a parameter of shape [{string.Join(",", target)}] spans the batch axis; its per-example gradient is not defined");
        }
        var axes = new List<long>();
        for (int i = 0; i < gShape.Length; i++)
        {
            if (perExample && i == 0)
            {
                continue;
            }
            bool missing = i < off;
            if (missing || (target[i - off] == 1 && gShape[i] != 1))
            {
                axes.Add(i);
            }
        }
        string r = g;
        if (axes.Count > 0)
        {
            var reducedShape = gShape.Select((d, i) => axes.Contains(i) ? 1 : d).ToArray();
            r = ReduceSum(g, axes.ToArray(), keepDims: true, reducedShape);
        }
        if (perExample)
        {
            return ReshapePerExample(r, target);
        }
        return axes.Count > 0 || off > 0 ? ReshapeTo(r, target) : r;
    }

    private string ProjectionConstant(string weight, string prefix, float[] matrix, long rows, int k, bool transposed, long[] dims)
    {
        if (k <= 0 || matrix.LongLength != rows * k)
        {
            throw new OnnxGraphException($"layer '{LayerName(weight)}': {prefix} holds {matrix.Length} values for {k} columns; the layer needs {rows} rows");
        }
        if (!transposed)
        {
            return B.Constant(prefix, matrix, dims);
        }
        var t = new float[matrix.Length];
        for (long r = 0; r < rows; r++)
        {
            for (int c = 0; c < k; c++)
            {
                t[c * rows + r] = matrix[r * k + c];
            }
        }
        return B.Constant(prefix, t, dims);
    }

    private string? Sum(Dictionary<string, List<string>> map, string name, long[]? shape)
    {
        if (!map.TryGetValue(name, out var list) || list.Count == 0)
        {
            return null;
        }
        while (list.Count > 1)
        {
            string s = Op("Add", [list[^2], list[^1]], shape);
            list.RemoveRange(list.Count - 2, 2);
            list.Add(s);
        }
        return list[0];
    }

    private static string Add(Dictionary<string, List<string>> map, string name, string value)
    {
        if (!map.TryGetValue(name, out var list))
        {
            map[name] = list = [];
        }
        list.Add(value);
        return value;
    }
}
