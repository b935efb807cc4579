using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx.Differentiation;

/// <summary>An integer known up to the symbolic batch: <c>Coef · batch + Const</c>.</summary>
internal readonly record struct SymInt(long Coef, long Const)
{
    /// <summary>The batch size itself.</summary>
    public static readonly SymInt Batch = new(1, 0);

    public bool IsConstant => Coef == 0;

    public static SymInt Of(long value) => new(0, value);

    /// <summary>True when the value is at least 1 for every batch size of at least 1.</summary>
    public bool IsPositiveForAnyBatch => Coef >= 0 && Coef + Const >= 1 && Const >= 0 || Coef == 0 && Const >= 1;

    public override string ToString() => Coef == 0 ? $"{Const}" : Const == 0 ? (Coef == 1 ? "batch" : $"{Coef}·batch") : $"{Coef}·batch+{Const}";
}

/// <summary>
/// The values of the integer tensors that compute shapes — what PyTorch's exporter writes around every reshape, pad,
/// expand and resize: Shape → Gather → Unsqueeze → Concat → Reshape, ConstantOfShape, Range, Where/Equal guards,
/// arithmetic on int64 scalars. Each value is a short vector of <see cref="SymInt"/>: constant entries where the image
/// size fixes them, <c>batch</c> (or a multiple of it) where they follow the symbolic batch axis. A value whose entries
/// are all constant is also an int constant (<see cref="TryIntConstant"/>), so the gradient rules read it as if the
/// exporter had folded it.
/// </summary>
internal sealed partial class ShapeInference
{
    /// <summary>Integer values that are too long to track (a shape vector is short; this is a bound, not a shape).</summary>
    private const int MaxTrackedValues = 4096;

    private readonly Dictionary<string, SymInt[]> _symbolic = new(StringComparer.Ordinal);

    /// <summary>The value of an integer tensor (flattened), constant or following the batch; null when not known.</summary>
    public SymInt[]? TryIntValue(string name)
    {
        if (name.Length == 0)
        {
            return null;
        }
        if (_intConstants.TryGetValue(name, out var c))
        {
            return Array.ConvertAll(c, SymInt.Of);
        }
        return _symbolic.GetValueOrDefault(name);
    }

    /// <summary>A shape vector as dimensions: constant entries as they are, the batch as <see cref="Batch"/>; null for another multiple of the batch.</summary>
    public static long[]? AsDims(SymInt[]? value)
    {
        if (value is null)
        {
            return null;
        }
        var dims = new long[value.Length];
        for (int i = 0; i < value.Length; i++)
        {
            if (value[i].IsConstant)
            {
                dims[i] = value[i].Const;
            }
            else if (value[i] == SymInt.Batch)
            {
                dims[i] = Batch;
            }
            else
            {
                return null;
            }
        }
        return dims;
    }

    private void SetIntValue(string name, SymInt[] value)
    {
        if (name.Length == 0 || value.Length > MaxTrackedValues)
        {
            return;
        }
        if (value.All(v => v.IsConstant))
        {
            _intConstants[name] = value.Select(v => v.Const).ToArray();
        }
        else
        {
            _symbolic[name] = value;
        }
    }

    private static bool IsIntegerType(int elemType) => elemType is TensorData.Int64 or (int)TensorProto.Types.DataType.Int32
        or (int)TensorProto.Types.DataType.Bool or (int)TensorProto.Types.DataType.Int16 or (int)TensorProto.Types.DataType.Int8
        or (int)TensorProto.Types.DataType.Uint8;

    /// <summary>Evaluates an integer-valued node whose inputs are known (after its output's shape and type are recorded).</summary>
    private void EvaluateValue(NodeProto node)
    {
        if (node.Output.Count == 0 || node.Output[0].Length == 0)
        {
            return;
        }
        string output = node.Output[0];
        if (_intConstants.ContainsKey(output) || _symbolic.ContainsKey(output))
        {
            return;
        }
        if (node.OpType == "Cast" && TryIntConstant(node.Input[0]) is { Length: <= 16 } castIn && Attr.GetInt(node, "to", 0) == TensorData.Float)
        {
            _floatConstants[output] = Array.ConvertAll(castIn, v => (float)v);
            return;
        }
        if (node.OpType == "ConstantOfShape")
        {
            EvaluateConstantOfShape(node);
            return;
        }
        if (!IsIntegerType(ElemType(output)))
        {
            return;
        }
        SymInt[]? V(int i) => i < node.Input.Count ? TryIntValue(node.Input[i]) : null;
        var value = node.OpType switch
        {
            "Shape" => ShapeValue(node),
            "Size" => TryShape(node.Input[0]) is { } sizeOf ? Multiply(sizeOf) : null,
            "Identity" or "Unsqueeze" or "Squeeze" or "Reshape" or "Flatten" => V(0),
            "Cast" => CastValue(V(0), (int)Attr.GetInt(node, "to", 0)),
            "Gather" => GatherValue(node),
            "Slice" => SliceValue(node),
            "Transpose" => TransposeValue(node),
            // Joined end to end: right for vectors (axis 0 of rank-1 values), the only Concat of shapes the exporter writes.
            "Concat" => node.Input.All(i => TryShape(i) is { Length: <= 1 }) && Enumerable.Range(0, node.Input.Count).Select(V).ToArray() is var parts
                && parts.All(p => p is not null) ? parts.SelectMany(p => p!).ToArray() : null,
            "Mod" when Attr.GetInt(node, "fmod", 0) != 0 => Elementwise("FMod", V(0), V(1), node),
            "Add" or "Sub" or "Mul" or "Div" or "Mod" or "Max" or "Min" or "Equal" or "Less" or "Greater" or "LessOrEqual" or "GreaterOrEqual"
                when node.Input.Count == 2 => Elementwise(node.OpType, V(0), V(1), node),
            "Neg" => V(0)?.Select(v => new SymInt(-v.Coef, -v.Const)).ToArray(),
            "Not" => V(0) is { } n && n.All(v => v.IsConstant) ? n.Select(v => SymInt.Of(v.Const == 0 ? 1 : 0)).ToArray() : null,
            "Where" => WhereValue(node, V(0), V(1), V(2)),
            "Range" => RangeValue(V(0), V(1), V(2)),
            "Expand" => V(0) is [var one] && AsDims(V(1)) is { Length: 1 } e && e[0] >= 0 ? Enumerable.Repeat(one, (int)e[0]).ToArray() : null,
            "ReduceProd" when TryShape(node.Input[0]) is { Length: 1 } && (node.Input.Count < 2 || node.Input[1].Length == 0)
                && Attr.GetInt(node, "noop_with_empty_axes", 0) == 0 => Multiply(V(0)),
            _ => null,
        };
        if (value is not null)
        {
            SetIntValue(output, value);
        }
    }

    /// <summary>Shape(x): x's dimensions, the batch as <see cref="SymInt.Batch"/>; opset 15's start and end taken into account.</summary>
    private SymInt[]? ShapeValue(NodeProto node)
    {
        if (TryShape(node.Input[0]) is not { } x)
        {
            return null;
        }
        var (start, end) = ShapeRange(node, x.Length);
        return x[start..end].Select(d => d == Batch ? SymInt.Batch : SymInt.Of(d)).ToArray();
    }

    /// <summary>The part of the input's dimensions a Shape node returns (opset 15: start and end, negative from the end, clamped).</summary>
    private static (int Start, int End) ShapeRange(NodeProto node, int rank)
    {
        long Clamp(long v) => Math.Clamp(v < 0 ? v + rank : v, 0, rank);
        long start = Clamp(Attr.GetInt(node, "start", 0));
        long end = Clamp(Attr.GetInt(node, "end", rank));
        return ((int)start, (int)Math.Max(start, end));
    }

    private static SymInt[]? Multiply(IEnumerable<long> dims) => Multiply(dims.Select(d => d == Batch ? SymInt.Batch : SymInt.Of(d)).ToArray());

    private static SymInt[]? Multiply(SymInt[]? values)
    {
        if (values is null)
        {
            return null;
        }
        var product = SymInt.Of(1);
        foreach (var v in values)
        {
            if (Combine("Mul", product, v) is not { } next)
            {
                return null;
            }
            product = next;
        }
        return [product];
    }

    private SymInt[]? GatherValue(NodeProto node)
    {
        var data = TryIntValue(node.Input[0]);
        var indices = TryIntConstant(node.Input[1]);
        if (data is null || indices is null || TryShape(node.Input[0]) is not { Length: <= 1 })
        {
            return null;
        }
        var result = new SymInt[indices.Length];
        for (int i = 0; i < indices.Length; i++)
        {
            long k = indices[i] < 0 ? indices[i] + data.Length : indices[i];
            if (k < 0 || k >= data.Length)
            {
                return null;
            }
            result[i] = data[k];
        }
        return result;
    }

    /// <summary>The known shape of a tracked value (every dimension constant, matching its length), or null.</summary>
    private long[]? ValueShape(string name, SymInt[] data)
    {
        var shape = TryShape(name);
        return shape is not null && shape.All(d => d >= 0) && TensorData.ElementCount(shape) == data.Length ? shape : null;
    }

    private SymInt[]? SliceValue(NodeProto node)
    {
        var data = TryIntValue(node.Input[0]);
        if (data is null || ValueShape(node.Input[0], data) is not { } shape || SliceRanges(node, shape) is not { } ranges)
        {
            return null;
        }
        // The kept indices along each axis, then their row-major product.
        var picks = ranges.Select(r =>
        {
            var kept = new List<long>();
            for (long i = r.Start; r.Step > 0 ? i < r.End : i > r.End; i += r.Step)
            {
                kept.Add(i);
            }
            return kept;
        }).ToArray();
        var strides = Strides(shape);
        IEnumerable<long> offsets = [0];
        for (int axis = 0; axis < shape.Length; axis++)
        {
            int a = axis;
            offsets = offsets.SelectMany(o => picks[a].Select(i => o + i * strides[a]));
        }
        return offsets.Select(o => data[o]).ToArray();
    }

    private SymInt[]? TransposeValue(NodeProto node)
    {
        var data = TryIntValue(node.Input[0]);
        if (data is null || ValueShape(node.Input[0], data) is not { } shape)
        {
            return null;
        }
        var perm = Attr.GetInts(node, "perm") ?? Enumerable.Range(0, shape.Length).Reverse().Select(i => (long)i).ToArray();
        var strides = Strides(shape);
        var outShape = perm.Select(p => shape[p]).ToArray();
        var result = new SymInt[data.Length];
        var index = new long[shape.Length];
        for (int o = 0; o < result.Length; o++)
        {
            long source = 0;
            for (int axis = 0; axis < perm.Length; axis++)
            {
                source += index[axis] * strides[perm[axis]];
            }
            result[o] = data[source];
            for (int axis = perm.Length - 1; axis >= 0 && ++index[axis] == outShape[axis]; axis--)
            {
                index[axis] = 0;
            }
        }
        return result;
    }

    private static long[] Strides(long[] shape)
    {
        var strides = new long[shape.Length];
        long stride = 1;
        for (int axis = shape.Length - 1; axis >= 0; axis--)
        {
            strides[axis] = stride;
            stride *= shape[axis];
        }
        return strides;
    }

    /// <summary>A Cast of a tracked value: to int64 or int32 as it is, to bool as 0/1; other targets are not tracked.</summary>
    private static SymInt[]? CastValue(SymInt[]? value, int to) => to switch
    {
        TensorData.Int64 or (int)TensorProto.Types.DataType.Int32 => value,
        (int)TensorProto.Types.DataType.Bool when value is not null && value.All(v => v.IsConstant) => value.Select(v => SymInt.Of(v.Const != 0 ? 1 : 0)).ToArray(),
        _ => null,
    };

    /// <summary>
    /// Whether the inputs of an element-wise node pair up entry by entry: all the same shape, or a single element (which
    /// broadcasts). Other broadcasts (a column against a row) are not tracked.
    /// </summary>
    private bool PairsEntryByEntry(NodeProto node, params SymInt[]?[] values)
    {
        if (values.Any(v => v is null))
        {
            return false;
        }
        long[]? common = null;
        for (int i = 0; i < values.Length; i++)
        {
            if (values[i]!.Length == 1)
            {
                continue;
            }
            if (TryShape(node.Input[i]) is not { } shape)
            {
                return false;
            }
            if (common is null)
            {
                common = shape;
            }
            else if (!common.SequenceEqual(shape))
            {
                return false;
            }
        }
        return true;
    }

    private SymInt[]? Elementwise(string op, SymInt[]? a, SymInt[]? b, NodeProto node)
    {
        if (a is null || b is null || !PairsEntryByEntry(node, a, b) || a.Length == 0 || b.Length == 0)
        {
            return null;
        }
        int n = Math.Max(a.Length, b.Length);
        var result = new SymInt[n];
        for (int i = 0; i < n; i++)
        {
            if (Combine(op, a[a.Length == 1 ? 0 : i], b[b.Length == 1 ? 0 : i]) is not { } v)
            {
                return null;
            }
            result[i] = v;
        }
        return result;
    }

    /// <summary>One entry of an integer op; null where the result would not be an affine function of the batch, or is not decided by it.</summary>
    private static SymInt? Combine(string op, SymInt a, SymInt b)
    {
        if (a.IsConstant && b.IsConstant)
        {
            long x = a.Const, y = b.Const;
            return op switch
            {
                "Add" => SymInt.Of(x + y),
                "Sub" => SymInt.Of(x - y),
                "Mul" => SymInt.Of(x * y),
                "Div" => y == 0 ? null : SymInt.Of(x / y),
                "Mod" => y == 0 ? null : SymInt.Of(((x % y) + y) % y),
                "FMod" => y == 0 ? null : SymInt.Of(x % y),
                "Max" => SymInt.Of(Math.Max(x, y)),
                "Min" => SymInt.Of(Math.Min(x, y)),
                "Equal" => SymInt.Of(x == y ? 1 : 0),
                "Less" => SymInt.Of(x < y ? 1 : 0),
                "Greater" => SymInt.Of(x > y ? 1 : 0),
                "LessOrEqual" => SymInt.Of(x <= y ? 1 : 0),
                "GreaterOrEqual" => SymInt.Of(x >= y ? 1 : 0),
                _ => null,
            };
        }
        switch (op)
        {
            case "Add":
                return new SymInt(a.Coef + b.Coef, a.Const + b.Const);
            case "Sub":
                return new SymInt(a.Coef - b.Coef, a.Const - b.Const);
            case "Mul" when a.IsConstant || b.IsConstant:
                {
                    var (s, k) = a.IsConstant ? (b, a.Const) : (a, b.Const);
                    return new SymInt(s.Coef * k, s.Const * k);
                }
            case "Div" when b.IsConstant && b.Const != 0 && a.Coef % b.Const == 0 && a.Const % b.Const == 0:
                return new SymInt(a.Coef / b.Const, a.Const / b.Const);
            case "Equal" or "Less" or "Greater" or "LessOrEqual" or "GreaterOrEqual":
                // A batch-sized value is at least 1: compared with a constant below 1 (the exporter's -1 and 0 guards), the answer is known.
                if (b.IsConstant && a.IsPositiveForAnyBatch && b.Const < 1)
                {
                    return SymInt.Of(op is "Greater" or "GreaterOrEqual" ? 1 : 0);
                }
                if (a.IsConstant && b.IsPositiveForAnyBatch && a.Const < 1)
                {
                    return SymInt.Of(op is "Less" or "LessOrEqual" ? 1 : 0);
                }
                return a == b ? SymInt.Of(op is "Equal" or "LessOrEqual" or "GreaterOrEqual" ? 1 : 0) : null;
            default:
                return null;
        }
    }

    private SymInt[]? WhereValue(NodeProto node, SymInt[]? condition, SymInt[]? x, SymInt[]? y)
    {
        if (condition is null || x is null || y is null || !PairsEntryByEntry(node, condition, x, y) || condition.Any(c => !c.IsConstant)
            || condition.Length == 0 || x.Length == 0 || y.Length == 0)
        {
            return null;
        }
        int n = Math.Max(condition.Length, Math.Max(x.Length, y.Length));
        if (new[] { condition.Length, x.Length, y.Length }.Any(l => l != 1 && l != n))
        {
            return null;
        }
        var result = new SymInt[n];
        for (int i = 0; i < n; i++)
        {
            result[i] = condition[condition.Length == 1 ? 0 : i].Const != 0 ? x[x.Length == 1 ? 0 : i] : y[y.Length == 1 ? 0 : i];
        }
        return result;
    }

    private static SymInt[]? RangeValue(SymInt[]? start, SymInt[]? limit, SymInt[]? delta)
    {
        if (start is not [{ IsConstant: true } s] || limit is not [{ IsConstant: true } l] || delta is not [{ IsConstant: true, Const: not 0 } d])
        {
            return null;
        }
        long count = Math.Max(0, (long)Math.Ceiling((double)(l.Const - s.Const) / d.Const));
        return count > MaxTrackedValues ? null : Enumerable.Range(0, (int)count).Select(i => SymInt.Of(s.Const + i * d.Const)).ToArray();
    }

    /// <summary>ConstantOfShape: its shape (the batch may be symbolic), its type, and its value where it is small and integer (or a few floats).</summary>
    private void EvaluateConstantOfShape(NodeProto node)
    {
        var value = Attr.Find(node, "value")?.T;
        int type = value?.DataType ?? TensorData.Float;
        var dims = AsDims(TryIntValue(node.Input[0]));
        string output = node.Output[0];
        _types[output] = type;
        if (dims is null)
        {
            return;
        }
        _shapes[output] = dims;
        if (dims.Any(d => d < 0))
        {
            return;
        }
        long count = TensorData.ElementCount(dims);
        if (type is TensorData.Int64 or (int)TensorProto.Types.DataType.Int32 && count <= MaxTrackedValues)
        {
            long fill = value is null ? 0 : TensorData.ToInt64s(value).FirstOrDefault();
            _intConstants[output] = Enumerable.Repeat(fill, (int)count).ToArray();
        }
        else if (type == TensorData.Float && count <= 16)
        {
            float fill = value is null ? 0 : TensorData.ToFloats(value).FirstOrDefault();
            _floatConstants[output] = Enumerable.Repeat(fill, (int)count).ToArray();
        }
    }
}
