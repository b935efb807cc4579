using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx.Differentiation;

/// <summary>The first node whose output shape could not be inferred (null op and node for a graph input without a shape).</summary>
internal sealed record ShapeBlocker(string? OpType, string? NodeName, string Detail);

/// <summary>
/// Static shapes of the values of a graph, with the batch dimension symbolic (written -1).
/// Only what the gradient rules need: an op the inference does not know leaves its outputs unknown,
/// and a rule that needs an unknown shape raises <see cref="UnsupportedOperatorException"/>.
/// </summary>
internal sealed partial class ShapeInference
{
    /// <summary>The symbolic batch dimension.</summary>
    public const long Batch = -1;

    private readonly Dictionary<string, long[]> _shapes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _types = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long[]> _intConstants = new(StringComparer.Ordinal);
    private readonly Dictionary<string, float[]> _floatConstants = new(StringComparer.Ordinal);

    public ShapeInference(GraphProto graph, int opset)
    {
        Opset = opset;
        foreach (var init in graph.Initializer)
        {
            _shapes[init.Name] = init.Dims.ToArray();
            _types[init.Name] = init.DataType;
            if (init.DataType == TensorData.Int64 || init.DataType == (int)TensorProto.Types.DataType.Int32)
            {
                _intConstants[init.Name] = TensorData.ToInt64s(init);
            }
            else if (init.DataType == TensorData.Float && TensorData.ElementCount(init.Dims) <= 16)
            {
                _floatConstants[init.Name] = TensorData.ToFloats(init);
            }
        }
        foreach (var input in graph.Input)
        {
            if (_shapes.ContainsKey(input.Name))
            {
                continue;
            }
            var tt = input.Type?.TensorType;
            if (tt is null)
            {
                continue;
            }
            _types[input.Name] = tt.ElemType;
            if (tt.Shape is not null)
            {
                // Axis 0 may be open (the batch); an input with any other axis open has no static shape (refused where a rule needs it).
                var dims = tt.Shape.Dim;
                if (dims.Skip(1).All(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue))
                {
                    _shapes[input.Name] = dims.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? d.DimValue : Batch).ToArray();
                }
            }
        }
        foreach (var node in graph.Node)
        {
            Infer(node);
            EvaluateValue(node);
            Blame(node);
        }
    }

    private readonly Dictionary<string, ShapeBlocker> _blockers = new(StringComparer.Ordinal);

    /// <summary>
    /// Why the shape of <paramref name="name"/> is unknown: the first node on its way whose output shape could not be
    /// inferred from known input shapes (or the graph input without a declared shape), or null when nothing is recorded.
    /// </summary>
    public ShapeBlocker? Blocker(string name) => _blockers.GetValueOrDefault(name);

    /// <summary>Records, for each output left without a shape, the node that blocks: an upstream blocker, else this node.</summary>
    private void Blame(NodeProto node)
    {
        ShapeBlocker? upstream = null;
        foreach (var i in node.Input)
        {
            if (i.Length > 0 && !_shapes.ContainsKey(i))
            {
                upstream = _blockers.GetValueOrDefault(i) ?? new ShapeBlocker(null, null, $"the graph input '{i}' has no declared shape");
                break;
            }
        }
        foreach (var o in node.Output)
        {
            if (o.Length > 0 && !_shapes.ContainsKey(o))
            {
                _blockers[o] = upstream ?? new ShapeBlocker(node.OpType, VjpBuilder.NodeLabel(node),
                    $"shape inference stops at node '{VjpBuilder.NodeLabel(node)}' ({node.OpType}): {WhyNoShape(node)}");
            }
        }
    }

    /// <summary>Why a node's output shape is unknown although its inputs' shapes are known, and what would make it work.</summary>
    private string WhyNoShape(NodeProto node)
    {
        int shapeInput = node.OpType switch
        {
            "Reshape" or "Expand" or "Tile" => 1,
            "ConstantOfShape" => 0,
            "Resize" => node.Input.Count > 3 && node.Input[3].Length > 0 ? 3 : 2,
            "Pad" or "Slice" or "Range" or "Unsqueeze" or "Squeeze" or "Split" => 1,
            _ => -1,
        };
        if (shapeInput < 0 || shapeInput >= node.Input.Count || node.Input[shapeInput].Length == 0)
        {
            return "no shape inference for this op with these attributes";
        }
        string input = node.Input[shapeInput];
        if (_symbolic.TryGetValue(input, out var value))
        {
            return $"its shape input '{input}' is [{string.Join(", ", value)}]: a dimension that is a multiple of the batch (other than the batch itself) "
                + "has no per-example meaning; write the model so that the batch stays its own axis (e.g. view(b, -1, heads, d).transpose(1, 2) "
                + "instead of reshape(b * heads, -1, d))";
        }
        return $"its shape input '{input}' is not known statically (it depends on the data, or on an op whose value the inference does not "
            + "evaluate): export with a fixed image size and shapes that depend only on it, and the exporter's shape arithmetic reduces to constants";
    }

    public int Opset { get; }

    public long[]? TryShape(string name) => _shapes.TryGetValue(name, out var s) ? s : null;

    public int ElemType(string name) => _types.TryGetValue(name, out var t) ? t : 0;

    public long[]? TryIntConstant(string name) => name.Length > 0 && _intConstants.TryGetValue(name, out var v) ? v : null;

    public float[]? TryFloatConstant(string name) => name.Length > 0 && _floatConstants.TryGetValue(name, out var v) ? v : null;

    /// <summary>Records the shape of a value added while building the gradient graph.</summary>
    public void Set(string name, long[] shape, int elemType = TensorData.Float)
    {
        _shapes[name] = shape;
        _types[name] = elemType;
    }

    private void Infer(NodeProto node)
    {
        long[]? S(int i) => i < node.Input.Count && node.Input[i].Length > 0 ? TryShape(node.Input[i]) : null;
        int T(int i) => i < node.Input.Count ? ElemType(node.Input[i]) : 0;
        void Out(long[]? shape, int type, int index = 0)
        {
            if (index < node.Output.Count && node.Output[index].Length > 0)
            {
                if (shape is not null)
                {
                    _shapes[node.Output[index]] = shape;
                }
                _types[node.Output[index]] = type;
            }
        }

        var x = S(0);
        switch (node.OpType)
        {
            case "Add": case "Sub": case "Mul": case "Div": case "Mod": case "Pow": case "PRelu":
                Out(Broadcast(x, S(1)), T(0));
                break;
            case "Sum": case "Max": case "Min": case "Mean":
                Out(Enumerable.Range(1, node.Input.Count - 1).Aggregate(x, (a, i) => Broadcast(a, S(i))), T(0));
                break;
            case "Greater": case "Less": case "Equal": case "GreaterOrEqual": case "LessOrEqual":
                Out(Broadcast(x, S(1)), (int)TensorProto.Types.DataType.Bool);
                break;
            case "Where":
                Out(Broadcast(Broadcast(x, S(1)), S(2)), T(1));
                break;
            case "Sigmoid": case "Relu": case "Tanh": case "Sqrt": case "Exp": case "Log": case "Neg": case "Sin": case "Cos":
            case "Identity": case "Softmax": case "LogSoftmax": case "Abs": case "Reciprocal": case "LeakyRelu": case "Elu": case "Erf":
            case "Softplus": case "HardSigmoid": case "Dropout": case "BatchNormalization": case "GroupNormalization":
            case "LayerNormalization": case "InstanceNormalization": case "Sign":
            case "Gelu": case "Selu": case "Celu": case "HardSwish": case "Mish": case "Softsign": case "Clip": case "CumSum":
            case "Round": case "Floor": case "Ceil": case "ThresholdedRelu": case "Shrink": case "Hardmax": case "Not": case "IsNaN": case "IsInf":
                Out(x, node.OpType is "Not" or "IsNaN" or "IsInf" ? (int)TensorProto.Types.DataType.Bool : T(0));
                break;
            case "Split":
                SplitShapes(node, x);
                break;
            case "Gather":
                {
                    var ind = S(1);
                    if (x is not null && ind is not null)
                    {
                        long axis = Attr.GetInt(node, "axis", 0);
                        axis = axis < 0 ? axis + x.Length : axis;
                        Out([.. x[..(int)axis], .. ind, .. x[((int)axis + 1)..]], T(0));
                        if (TryIntConstant(node.Input[0]) is { } table && TryIntConstant(node.Input[1]) is { } picks && x.Length == 1)
                        {
                            _intConstants[node.Output[0]] = picks.Select(p => table[p < 0 ? p + table.Length : p]).ToArray();
                        }
                    }
                    break;
                }
            case "Tile":
                {
                    var repeats = TryIntConstant(node.Input[1]);
                    if (x is not null && repeats is not null && repeats.Length == x.Length)
                    {
                        // A repeated batch axis is a multiple of the batch: not a shape with one symbolic batch.
                        Out(x.Where((d, i) => d < 0 && repeats[i] != 1).Any() ? null : x.Select((d, i) => d < 0 ? d : d * repeats[i]).ToArray(), T(0));
                    }
                    break;
                }
            case "DepthToSpace": case "SpaceToDepth":
                if (x is { Length: 4 })
                {
                    long bs = Attr.GetInt(node, "blocksize", 1);
                    Out(node.OpType == "DepthToSpace" ? [x[0], x[1] / (bs * bs), x[2] * bs, x[3] * bs] : [x[0], x[1] * bs * bs, x[2] / bs, x[3] / bs], T(0));
                }
                break;
            case "ConvTranspose":
                Out(ConvTransposeShape(node, x, S(1)), T(0));
                break;
            case "Einsum":
                Out(EinsumShape(node, Enumerable.Range(0, node.Input.Count).Select(S).ToArray()), T(0));
                break;
            case "Shape":
                Out(x is null ? null : [ShapeRange(node, x.Length) is var (from, to) ? to - from : 0], TensorData.Int64);
                break;
            case "Cast":
                Out(x, (int)Attr.GetInt(node, "to", 1));
                break;
            case "Conv":
                Out(ConvShape(node, x, S(1)), T(0));
                break;
            case "MaxPool": case "AveragePool":
                {
                    var s = PoolShape(node, x);
                    Out(s, T(0));
                    Out(s, TensorData.Int64, 1);
                    break;
                }
            case "GlobalAveragePool": case "GlobalMaxPool":
                Out(x is null ? null : [x[0], x[1], .. Enumerable.Repeat(1L, x.Length - 2)], T(0));
                break;
            case "Gemm":
                {
                    var b = S(1);
                    if (x is not null && b is not null)
                    {
                        long m = Attr.GetInt(node, "transA", 0) != 0 ? x[1] : x[0];
                        long n = Attr.GetInt(node, "transB", 0) != 0 ? b[0] : b[1];
                        Out([m, n], T(0));
                    }
                    break;
                }
            case "MatMul":
                Out(MatMulShape(x, S(1)), T(0));
                break;
            case "Reshape":
                Out(ReshapeShape(x, TryIntValue(node.Input[1]), Attr.GetInt(node, "allowzero", 0) != 0), T(0));
                break;
            case "Size":
                Out(x is null ? null : [], TensorData.Int64);
                break;
            case "Range":
                {
                    var start = TryIntConstant(node.Input[0]);
                    var limit = TryIntConstant(node.Input[1]);
                    var delta = TryIntConstant(node.Input[2]);
                    var starts = TryFloatConstant(node.Input[0]);
                    var limits = TryFloatConstant(node.Input[1]);
                    var deltas = TryFloatConstant(node.Input[2]);
                    double? count = start is [var s0] && limit is [var l0] && delta is [var d0] && d0 != 0 ? Math.Ceiling((double)(l0 - s0) / d0)
                        : starts is [var s1] && limits is [var l1] && deltas is [var d1] && d1 != 0 ? Math.Ceiling((l1 - s1) / d1) : null;
                    Out(count is { } n ? [(long)Math.Max(0, n)] : null, T(0));
                    break;
                }
            case "Flatten":
                if (x is not null)
                {
                    long axis = Attr.GetInt(node, "axis", 1);
                    if (axis < 0)
                    {
                        axis += x.Length;
                    }
                    // The batch may stand alone in one part (times ones); merged with other dimensions it has no per-example meaning.
                    long Part(long[] dims) => dims.Contains(Batch) && dims.Where(d => d != Batch).Aggregate(1L, (a, b) => a * b) != 1 || dims.Count(d => d == Batch) > 1
                        ? long.MinValue : Product(dims);
                    long head = Part(x[..(int)axis]), tail = Part(x[(int)axis..]);
                    Out(head == long.MinValue || tail == long.MinValue ? null : [head, tail], T(0));
                }
                break;
            case "Transpose":
                if (x is not null)
                {
                    var perm = Attr.GetInts(node, "perm") ?? Enumerable.Range(0, x.Length).Reverse().Select(i => (long)i).ToArray();
                    Out(perm.Select(p => x[p]).ToArray(), T(0));
                }
                break;
            case "Unsqueeze":
                {
                    var axes = node.Input.Count > 1 ? TryIntConstant(node.Input[1]) : Attr.GetInts(node, "axes");
                    if (x is not null && axes is not null)
                    {
                        int r = x.Length + axes.Length;
                        var norm = axes.Select(a => a < 0 ? a + r : a).ToHashSet();
                        var result = new long[r];
                        int k = 0;
                        for (int i = 0; i < r; i++)
                        {
                            result[i] = norm.Contains(i) ? 1 : x[k++];
                        }
                        Out(result, T(0));
                        if (TryIntConstant(node.Input[0]) is { } cv)
                        {
                            _intConstants[node.Output[0]] = cv;
                        }
                    }
                    break;
                }
            case "Squeeze":
                {
                    var axes = node.Input.Count > 1 ? TryIntConstant(node.Input[1]) : Attr.GetInts(node, "axes");
                    if (x is not null)
                    {
                        var norm = axes?.Select(a => a < 0 ? a + x.Length : a).ToHashSet();
                        Out(x.Where((d, i) => norm is null ? d != 1 : !norm.Contains(i)).ToArray(), T(0));
                    }
                    break;
                }
            case "Concat":
                {
                    var shapes = Enumerable.Range(0, node.Input.Count).Select(S).ToArray();
                    if (shapes.All(s => s is not null))
                    {
                        long axis = Attr.GetInt(node, "axis", 0);
                        var first = shapes[0]!;
                        if (axis < 0)
                        {
                            axis += first.Length;
                        }
                        var result = (long[])first.Clone();
                        // Along the batch axis the result is a multiple of the batch: not a shape with one symbolic batch.
                        result[axis] = shapes.Any(s => s![axis] < 0) ? 0 : shapes.Sum(s => s![axis]);
                        Out(shapes.Any(s => s![axis] < 0) ? null : result, T(0));
                    }
                    break;
                }
            case "Slice":
                Out(SliceShape(node, x), T(0));
                break;
            case "ReduceMean": case "ReduceSum": case "ReduceMax": case "ReduceMin": case "ReduceL2": case "ReduceL1": case "ReduceLogSumExp":
            case "ReduceSumSquare": case "ReduceProd": case "ReduceLogSum":
                if (x is not null && ReduceAxes(node, x.Length) is { } raxes)
                {
                    bool keep = Attr.GetInt(node, "keepdims", 1) != 0;
                    var result = new List<long>();
                    for (int i = 0; i < x.Length; i++)
                    {
                        if (raxes.Contains(i))
                        {
                            if (keep)
                            {
                                result.Add(1);
                            }
                        }
                        else
                        {
                            result.Add(x[i]);
                        }
                    }
                    Out(result.ToArray(), T(0));
                }
                break;
            case "Resize":
                {
                    var scales = node.Input.Count > 2 ? TryFloatConstant(node.Input[2]) : null;
                    var sizes = node.Input.Count > 3 ? AsDims(TryIntValue(node.Input[3])) : null;
                    if (x is not null && scales is { Length: > 0 })
                    {
                        Out(x.Select((d, i) => d < 0 ? d : (long)Math.Floor(d * scales[i])).ToArray(), T(0));
                    }
                    else if (sizes is not null)
                    {
                        // The batch stays symbolic when the sizes were written for one batch size.
                        Out(sizes.Select((d, i) => x is not null && i < x.Length && x[i] < 0 ? x[i] : d).ToArray(), T(0));
                    }
                    break;
                }
            case "Pad":
                {
                    var pads = x is null ? null : PadAmounts(node, x.Length);
                    if (x is not null && pads is not null && pads.Length == 2 * x.Length)
                    {
                        Out(x.Select((d, i) => d < 0 ? d : d + pads[i] + pads[i + x.Length]).ToArray(), T(0));
                    }
                    break;
                }
            case "Expand":
                {
                    var shape = AsDims(TryIntValue(node.Input[1]));
                    Out(shape is null ? null : Broadcast(x, shape), T(0));
                    break;
                }
            case "Constant":
                {
                    var value = Attr.Find(node, "value");
                    if (value?.T is { } t)
                    {
                        _shapes[node.Output[0]] = t.Dims.ToArray();
                        _types[node.Output[0]] = t.DataType;
                        if (t.DataType == TensorData.Int64)
                        {
                            _intConstants[node.Output[0]] = TensorData.ToInt64s(t);
                        }
                        else if (t.DataType == TensorData.Float && TensorData.ElementCount(t.Dims) <= 16)
                        {
                            _floatConstants[node.Output[0]] = TensorData.ToFloats(t);
                        }
                    }
                    break;
                }
            default:
                foreach (var o in node.Output)
                {
                    _types.TryAdd(o, T(0));
                }
                break;
        }
    }
}
