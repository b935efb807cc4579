using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx.Differentiation;

/// <summary>The first node whose output shape could not be inferred (null op and node for a graph input without a shape).</summary>
internal sealed record ShapeBlocker(string? OpType, string? NodeName, string Detail);

/// <summary>
/// Static shapes of the values of a graph, with the batch dimension symbolic (written -1).
/// Only what the gradient rules need: an op the inference does not know leaves its outputs unknown,
/// and a rule that needs an unknown shape raises <see cref="UnsupportedOperatorException"/>.
/// </summary>
internal sealed class ShapeInference
{
    /// <summary>The symbolic batch dimension.</summary>
    public const long Batch = -1;

    private readonly Dictionary<string, long[]> _shapes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _types = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long[]> _intConstants = new(StringComparer.Ordinal);
    private readonly Dictionary<string, float[]> _floatConstants = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _shapeOf = new(StringComparer.Ordinal);

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
                _shapes[input.Name] = tt.Shape.Dim.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? d.DimValue : Batch).ToArray();
            }
        }
        foreach (var node in graph.Node)
        {
            Infer(node);
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
                    $"shape inference stops at node '{VjpBuilder.NodeLabel(node)}' ({node.OpType}): no inference for this op, or its shape inputs are not constant");
            }
        }
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
            case "Add": case "Sub": case "Mul": case "Div": case "Pow": case "PRelu":
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
                        Out(x.Select((d, i) => d < 0 ? (repeats[i] == 1 ? d : Batch) : d * repeats[i]).ToArray(), T(0));
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
                Out(x is null ? null : [x.Length], TensorData.Int64);
                if (Attr.Find(node, "start") is null && Attr.Find(node, "end") is null)
                {
                    _shapeOf[node.Output[0]] = node.Input[0];
                }
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
            case "Reshape" when _shapeOf.TryGetValue(node.Input[1], out var like):
                // Reshape to the runtime shape of another value (the opset adapter's form of the old Softmax).
                Out(TryShape(like), T(0));
                break;
            case "Reshape":
                Out(ReshapeShape(x, TryIntConstant(node.Input[1]), Attr.GetInt(node, "allowzero", 0) != 0), T(0));
                break;
            case "Flatten":
                if (x is not null)
                {
                    long axis = Attr.GetInt(node, "axis", 1);
                    if (axis < 0)
                    {
                        axis += x.Length;
                    }
                    Out([Product(x[..(int)axis]), Product(x[(int)axis..])], T(0));
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
                        result[axis] = shapes.Any(s => s![axis] < 0) ? Batch : shapes.Sum(s => s![axis]);
                        Out(result, T(0));
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
                    var sizes = node.Input.Count > 3 ? TryIntConstant(node.Input[3]) : null;
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
                    var shape = TryIntConstant(node.Input[1]);
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

    /// <summary>
    /// A Pad node's amounts for every axis (begin for all axes, then end), from its pads input or attribute and its axes
    /// input (opset 18: pads for the listed axes only); null when not constant.
    /// </summary>
    public long[]? PadAmounts(NodeProto node, int rank)
    {
        var given = node.Input.Count > 1 ? TryIntConstant(node.Input[1]) : Attr.GetInts(node, "pads");
        if (given is null || node.Input.Count <= 3 || node.Input[3].Length == 0)
        {
            return given;
        }
        if (TryIntConstant(node.Input[3]) is not { } axes)
        {
            return null;
        }
        var pads = new long[2 * rank];
        for (int i = 0; i < axes.Length; i++)
        {
            long a = axes[i] < 0 ? axes[i] + rank : axes[i];
            pads[a] = given[i];
            pads[a + rank] = given[i + axes.Length];
        }
        return pads;
    }

    /// <summary>The axes a Reduce* node reduces, normalised to 0..rank−1, or null when they are not constant.</summary>
    public HashSet<long>? ReduceAxes(NodeProto node, int rank)
    {
        bool axesAsInput = node.OpType == "ReduceSum" ? Opset >= 13 : Opset >= 18;
        long[]? axes = axesAsInput
            ? (node.Input.Count > 1 && node.Input[1].Length > 0 ? TryIntConstant(node.Input[1]) : [])
            : Attr.GetInts(node, "axes") ?? [];
        if (axes is null)
        {
            return null;
        }
        if (axes.Length == 0)
        {
            return Attr.GetInt(node, "noop_with_empty_axes", 0) != 0 ? [] : Enumerable.Range(0, rank).Select(i => (long)i).ToHashSet();
        }
        return axes.Select(a => a < 0 ? a + rank : a).ToHashSet();
    }

    public static long[]? Broadcast(long[]? a, long[]? b)
    {
        if (a is null || b is null)
        {
            return null;
        }
        int r = Math.Max(a.Length, b.Length);
        var result = new long[r];
        for (int i = 0; i < r; i++)
        {
            long da = i - (r - a.Length) >= 0 ? a[i - (r - a.Length)] : 1;
            long db = i - (r - b.Length) >= 0 ? b[i - (r - b.Length)] : 1;
            result[i] = da == 1 ? db : db == 1 ? da : da < 0 || db < 0 ? Math.Max(da, db) == Batch ? Batch : Math.Max(da, db) : da;
        }
        return result;
    }

    public static long Product(IEnumerable<long> dims)
    {
        long p = 1;
        foreach (var d in dims)
        {
            if (d < 0)
            {
                return Batch;
            }
            p *= d;
        }
        return p;
    }

    private static long[]? MatMulShape(long[]? a, long[]? b)
    {
        if (a is null || b is null || a.Length < 1 || b.Length < 1)
        {
            return null;
        }
        if (b.Length == 1 || a.Length == 1)
        {
            return null;
        }
        var batch = Broadcast(a[..^2], b[..^2])!;
        return [.. batch, a[^2], b[^1]];
    }

    private static long[]? ReshapeShape(long[]? x, long[]? shape, bool allowZero)
    {
        if (x is null || shape is null)
        {
            return null;
        }
        var result = new long[shape.Length];
        int inferred = -1;
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] == 0 && !allowZero)
            {
                result[i] = i < x.Length ? x[i] : 0;
            }
            else if (shape[i] == -1)
            {
                inferred = i;
                result[i] = Batch;
            }
            else
            {
                result[i] = shape[i];
            }
        }
        if (inferred >= 0)
        {
            // The inferred dimension absorbs the batch when the batch is not copied elsewhere.
            bool batchElsewhere = result.Where((d, i) => i != inferred && d == Batch).Any();
            long known = Product(result.Where((d, i) => i != inferred && d != Batch));
            long total = Product(x.Where(d => d != Batch));
            bool xHasBatch = x.Contains(Batch);
            if (xHasBatch && !batchElsewhere)
            {
                if (total != known)
                {
                    return null; // batch × something: not representable with one symbolic dimension
                }
                result[inferred] = Batch;
            }
            else
            {
                result[inferred] = known == 0 ? 0 : total / known;
            }
        }
        return result;
    }

    /// <summary>
    /// A Conv's or pool's explicit pads, from <c>pads</c> or from <c>auto_pad</c> (SAME_UPPER puts the odd pixel at the end,
    /// SAME_LOWER at the start); null when the spatial size is unknown and auto_pad needs it.
    /// </summary>
    public static long[]? Pads(NodeProto node, long[] x, long[] k, long[] strides, long[] dil)
    {
        int spatial = x.Length - 2;
        string auto = Attr.GetString(node, "auto_pad", "NOTSET");
        if (auto is "NOTSET" or "")
        {
            return Attr.GetInts(node, "pads") ?? new long[2 * spatial];
        }
        var pads = new long[2 * spatial];
        if (auto == "VALID")
        {
            return pads;
        }
        for (int i = 0; i < spatial; i++)
        {
            if (x[2 + i] < 0)
            {
                return null;
            }
            long o = (x[2 + i] + strides[i] - 1) / strides[i];
            long total = Math.Max(0, (o - 1) * strides[i] + (k[i] - 1) * dil[i] + 1 - x[2 + i]);
            long small = total / 2;
            pads[i] = auto == "SAME_LOWER" ? total - small : small;
            pads[i + spatial] = total - pads[i];
        }
        return pads;
    }

    private static long[]? ConvShape(NodeProto node, long[]? x, long[]? w)
    {
        if (x is null || w is null)
        {
            return null;
        }
        int spatial = x.Length - 2;
        var k = Attr.GetInts(node, "kernel_shape") ?? w[2..];
        var strides = Attr.GetInts(node, "strides") ?? Enumerable.Repeat(1L, spatial).ToArray();
        var dil = Attr.GetInts(node, "dilations") ?? Enumerable.Repeat(1L, spatial).ToArray();
        var pads = Pads(node, x, k, strides, dil);
        if (pads is null)
        {
            return null;
        }
        var result = new long[x.Length];
        result[0] = x[0];
        result[1] = w[0];
        for (int i = 0; i < spatial; i++)
        {
            long ek = (k[i] - 1) * dil[i] + 1;
            result[2 + i] = (x[2 + i] + pads[i] + pads[i + spatial] - ek) / strides[i] + 1;
        }
        return result;
    }

    private static long[]? PoolShape(NodeProto node, long[]? x)
    {
        var k = Attr.GetInts(node, "kernel_shape");
        if (x is null || k is null)
        {
            return null;
        }
        int spatial = x.Length - 2;
        var strides = Attr.GetInts(node, "strides") ?? Enumerable.Repeat(1L, spatial).ToArray();
        var dil = Attr.GetInts(node, "dilations") ?? Enumerable.Repeat(1L, spatial).ToArray();
        var pads = Pads(node, x, k, strides, dil);
        if (pads is null)
        {
            return null;
        }
        bool ceil = Attr.GetInt(node, "ceil_mode", 0) != 0;
        var result = new long[x.Length];
        result[0] = x[0];
        result[1] = x[1];
        for (int i = 0; i < spatial; i++)
        {
            long ek = (k[i] - 1) * dil[i] + 1;
            double v = (double)(x[2 + i] + pads[i] + pads[i + spatial] - ek) / strides[i];
            result[2 + i] = (long)(ceil ? Math.Ceiling(v) : Math.Floor(v)) + 1;
        }
        return result;
    }

    private static long[]? ConvTransposeShape(NodeProto node, long[]? x, long[]? w)
    {
        if (x is null || w is null || Attr.GetString(node, "auto_pad", "NOTSET") is not ("NOTSET" or ""))
        {
            return null;
        }
        int spatial = x.Length - 2;
        var result = new long[x.Length];
        result[0] = x[0];
        result[1] = w[1] * Attr.GetInt(node, "group", 1);
        if (Attr.GetInts(node, "output_shape") is { } given)
        {
            given.CopyTo(result, 2 + (given.Length - spatial));
            return result;
        }
        var k = Attr.GetInts(node, "kernel_shape") ?? w[2..];
        var strides = Attr.GetInts(node, "strides") ?? Enumerable.Repeat(1L, spatial).ToArray();
        var dil = Attr.GetInts(node, "dilations") ?? Enumerable.Repeat(1L, spatial).ToArray();
        var pads = Attr.GetInts(node, "pads") ?? new long[2 * spatial];
        var outPad = Attr.GetInts(node, "output_padding") ?? new long[spatial];
        for (int i = 0; i < spatial; i++)
        {
            result[2 + i] = strides[i] * (x[2 + i] - 1) + outPad[i] + (k[i] - 1) * dil[i] + 1 - pads[i] - pads[i + spatial];
        }
        return result;
    }

    private void SplitShapes(NodeProto node, long[]? x)
    {
        if (x is null)
        {
            return;
        }
        long axis = Attr.GetInt(node, "axis", 0);
        axis = axis < 0 ? axis + x.Length : axis;
        if (SplitSizes(node, x[axis]) is not { } sizes)
        {
            return;
        }
        for (int i = 0; i < sizes.Length && i < node.Output.Count; i++)
        {
            var s = (long[])x.Clone();
            s[axis] = sizes[i];
            if (node.Output[i].Length > 0)
            {
                _shapes[node.Output[i]] = s;
                _types[node.Output[i]] = ElemType(node.Input[0]);
            }
        }
    }

    /// <summary>The sizes of a Split's parts along its axis of length <paramref name="length"/>, or null when unknown.</summary>
    public long[]? SplitSizes(NodeProto node, long length)
    {
        if (node.Input.Count > 1 && node.Input[1].Length > 0)
        {
            return TryIntConstant(node.Input[1]);
        }
        if (Attr.GetInts(node, "split") is { } attr)
        {
            return attr;
        }
        if (length < 0)
        {
            return null;
        }
        long parts = Attr.GetInt(node, "num_outputs", node.Output.Count);
        long each = (length + parts - 1) / parts;
        return Enumerable.Range(0, (int)parts).Select(i => Math.Min(each, length - i * each)).ToArray();
    }

    /// <summary>Parses an Einsum equation into its input terms and output term (explicit or implicit); no ellipsis.</summary>
    public static (string[] Inputs, string Output)? EinsumTerms(NodeProto node)
    {
        string eq = Attr.GetString(node, "equation", "").Replace(" ", "", StringComparison.Ordinal);
        if (eq.Contains("...", StringComparison.Ordinal) || eq.Length == 0)
        {
            return null;
        }
        var sides = eq.Split("->");
        var inputs = sides[0].Split(',');
        string output = sides.Length > 1 ? sides[1]
            : new string(inputs.SelectMany(t => t).GroupBy(ch => ch).Where(gr => gr.Count() == 1).Select(gr => gr.Key).Order().ToArray());
        return (inputs, output);
    }

    private static long[]? EinsumShape(NodeProto node, long[]?[] inputs)
    {
        if (EinsumTerms(node) is not { } terms || inputs.Any(i => i is null) || terms.Inputs.Length != inputs.Length)
        {
            return null;
        }
        var dims = new Dictionary<char, long>();
        for (int i = 0; i < inputs.Length; i++)
        {
            if (terms.Inputs[i].Length != inputs[i]!.Length)
            {
                return null;
            }
            for (int j = 0; j < terms.Inputs[i].Length; j++)
            {
                long d = inputs[i]![j];
                dims[terms.Inputs[i][j]] = dims.TryGetValue(terms.Inputs[i][j], out var e) && e != 1 ? e : d;
            }
        }
        return terms.Output.Select(ch => dims[ch]).ToArray();
    }

    /// <summary>Normalised (start, end, step) per axis of a Slice node, or null when not constant.</summary>
    public (long Start, long End, long Step)[]? SliceRanges(NodeProto node, long[] x)
    {
        var starts = TryIntConstant(node.Input[1]);
        var ends = TryIntConstant(node.Input[2]);
        if (starts is null || ends is null)
        {
            return null;
        }
        var axes = node.Input.Count > 3 && node.Input[3].Length > 0 ? TryIntConstant(node.Input[3]) : Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray();
        var steps = node.Input.Count > 4 && node.Input[4].Length > 0 ? TryIntConstant(node.Input[4]) : Enumerable.Repeat(1L, starts.Length).ToArray();
        if (axes is null || steps is null)
        {
            return null;
        }
        var result = x.Select(d => (0L, d, 1L)).ToArray();
        for (int i = 0; i < starts.Length; i++)
        {
            long axis = axes[i] < 0 ? axes[i] + x.Length : axes[i];
            long dim = x[axis];
            if (dim < 0)
            {
                return null;
            }
            long step = steps[i];
            long s = starts[i] < 0 ? starts[i] + dim : starts[i];
            long e = ends[i] < 0 ? ends[i] + dim : ends[i];
            if (step > 0)
            {
                s = Math.Clamp(s, 0, dim);
                e = Math.Clamp(e, 0, dim);
            }
            else
            {
                s = Math.Clamp(s, 0, dim - 1);
                e = Math.Clamp(e, -1, dim - 1);
            }
            result[axis] = (s, e, step);
        }
        return result;
    }

    private long[]? SliceShape(NodeProto node, long[]? x)
    {
        if (x is null || SliceRanges(node, x) is not { } ranges)
        {
            return null;
        }
        return ranges.Select((r, i) => x[i] < 0 ? x[i] : Math.Max(0, (r.End - r.Start + r.Step + (r.Step > 0 ? -1 : 1)) / r.Step)).ToArray();
    }
}
