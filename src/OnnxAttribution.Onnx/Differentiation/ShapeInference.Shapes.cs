using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx.Differentiation;

/// <summary>The shape arithmetic of <see cref="ShapeInference"/>: broadcasting, windows, reshapes, slices, splits, Einsum.</summary>
internal sealed partial class ShapeInference
{
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

    private static long[]? ReshapeShape(long[]? x, SymInt[]? target, bool allowZero)
    {
        if (x is null || target is null)
        {
            return null;
        }
        var result = new long[target.Length];
        var shape = new long[target.Length];
        int inferred = -1;
        for (int i = 0; i < shape.Length; i++)
        {
            if (!target[i].IsConstant)
            {
                // A dimension computed from the input's own batch (Shape → Gather → Concat): the batch, or not representable.
                if (target[i] != SymInt.Batch)
                {
                    return null;
                }
                result[i] = Batch;
                continue;
            }
            shape[i] = target[i].Const;
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
        if (axes is null || steps is null || steps.Contains(0) || axes.Length != starts.Length || ends.Length != starts.Length || steps.Length != starts.Length)
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
