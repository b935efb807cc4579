using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx.Differentiation;

/// <summary>The Kronecker factors of one layer: inputs a [B, S, InDim] and output gradients g [B, S, OutDim].</summary>
internal sealed record FactorPair(string Layer, string A, string G, long Positions, long InDim, long OutDim);

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

    public VjpContext(GraphBuilder builder, ShapeInference shapes, int opset, HashSet<string> parameters, HashSet<string> active, VjpOptions options)
    {
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

    public bool IsParameter(string name) => _params.Contains(name);

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
    public long[] Shape(NodeProto node, string name) =>
        Shapes.TryShape(name) ?? throw new UnsupportedOperatorException(node.OpType, VjpBuilder.NodeLabel(node), $"the shape of '{name}' cannot be inferred statically");

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
            throw new UnsupportedOperatorException(node.OpType, VjpBuilder.NodeLabel(node),
                $"parameter '{input}' is input {index} of this op; per-example gradients are defined for Conv and Gemm/MatMul weights and biases, " +
                "normalisation scales and biases, and broadcast operands of Add/Sub/Mul/Div");
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
            _ = Add(_paramGrads, input, Unbroadcast(node, gradient, gradientShape, target, perExample: true));
        }
        else
        {
            AddGradient(input, Unbroadcast(node, gradient, gradientShape, target, perExample: false));
        }
    }

    public void AddParameterGradient(string parameter, string perExampleGradient) => _ = Add(_paramGrads, parameter, perExampleGradient);

    public void AddFactors(string weight, string a, string g, long positions, long inDim, long outDim)
    {
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
    public FactorProjection? ProjectionOf(string weight) => _projections.GetValueOrDefault(LayerName(weight));

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
