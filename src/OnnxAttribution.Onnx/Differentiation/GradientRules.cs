using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx.Differentiation;

/// <summary>A vector–Jacobian-product rule: reads the node's output gradients from the context, adds its inputs' gradients.</summary>
internal delegate void GradientRule(VjpContext ctx, NodeProto node);

/// <summary>
/// One VJP rule per ONNX operator. Each rule emits ONNX nodes computing ∂⟨ḡ, y⟩/∂x for the inputs that need
/// it; parameters get per-example gradients shaped [B, …parameter shape].
/// </summary>
internal static partial class GradientRules
{
    public static readonly IReadOnlyDictionary<string, GradientRule> Rules = new Dictionary<string, GradientRule>(StringComparer.Ordinal)
    {
        ["Add"] = (c, n) => Binary(c, n, (g, _) => g, (g, _) => g),
        ["Sub"] = (c, n) => Binary(c, n, (g, _) => g, (g, s) => c.Op("Neg", [g], s)),
        ["Mul"] = (c, n) => Binary(c, n, (g, s) => c.Mul(g, n.Input[1], s), (g, s) => c.Mul(g, n.Input[0], s)),
        ["Div"] = (c, n) => Binary(c, n,
            (g, s) => c.Op("Div", [g, n.Input[1]], s),
            (g, s) => c.Op("Neg", [c.Op("Div", [c.Mul(g, n.Output[0], s), n.Input[1]], s)], s)),
        ["Pow"] = Pow,
        ["Neg"] = (c, n) => Unary(c, n, g => c.Op("Neg", [g], null)),
        ["Identity"] = (c, n) => Unary(c, n, g => g),
        ["Dropout"] = (c, n) => Unary(c, n, g => g),
        ["Cast"] = Cast,
        ["Sigmoid"] = (c, n) => Unary(c, n, g =>
        {
            var y = n.Output[0];
            return c.Mul(g, c.Mul(y, c.Op("Sub", [c.Scalar(1), y], null), null), null);
        }),
        ["Tanh"] = (c, n) => Unary(c, n, g =>
        {
            var y = n.Output[0];
            return c.Mul(g, c.Op("Sub", [c.Scalar(1), c.Mul(y, y, null)], null), null);
        }),
        ["Relu"] = (c, n) => Unary(c, n, g =>
            c.Mul(g, c.Op("Cast", [c.Op("Greater", [n.Input[0], c.Scalar(0)], null)], null, Attr.Int("to", TensorData.Float)), null)),
        ["LeakyRelu"] = (c, n) => Unary(c, n, g =>
            c.Op("Where", [c.Op("Greater", [n.Input[0], c.Scalar(0)], null), g, c.Mul(g, c.Scalar(Attr.GetFloat(n, "alpha", 0.01f)), null)], null)),
        ["Exp"] = (c, n) => Unary(c, n, g => c.Mul(g, n.Output[0], null)),
        ["Log"] = (c, n) => Unary(c, n, g => c.Op("Div", [g, n.Input[0]], null)),
        ["Sqrt"] = (c, n) => Unary(c, n, g => c.Op("Div", [g, c.Mul(n.Output[0], c.Scalar(2), null)], null)),
        ["Reciprocal"] = (c, n) => Unary(c, n, g => c.Op("Neg", [c.Mul(g, c.Mul(n.Output[0], n.Output[0], null), null)], null)),
        ["Sin"] = (c, n) => Unary(c, n, g => c.Mul(g, c.Op("Cos", [n.Input[0]], null), null)),
        ["Cos"] = (c, n) => Unary(c, n, g => c.Op("Neg", [c.Mul(g, c.Op("Sin", [n.Input[0]], null), null)], null)),
        ["Abs"] = (c, n) => Unary(c, n, g => c.Mul(g, c.Op("Sign", [n.Input[0]], null), null)),
        ["Softplus"] = (c, n) => Unary(c, n, g => c.Mul(g, c.Op("Sigmoid", [n.Input[0]], null), null)),
        ["Softmax"] = Softmax,
        ["LogSoftmax"] = LogSoftmax,
        ["Reshape"] = (c, n) => Unary(c, n, g => c.ReshapeLike(g, n.Input[0])),
        ["Flatten"] = (c, n) => Unary(c, n, g => c.ReshapeLike(g, n.Input[0])),
        ["Squeeze"] = (c, n) => Unary(c, n, g => c.ReshapeLike(g, n.Input[0])),
        ["Unsqueeze"] = (c, n) => Unary(c, n, g => c.ReshapeLike(g, n.Input[0])),
        ["Transpose"] = Transpose,
        ["Concat"] = Concat,
        ["Slice"] = Slice,
        ["Pad"] = Pad,
        ["Expand"] = (c, n) =>
        {
            if (c.Needs(n, 0) && c.GradOut(n) is { } g)
            {
                c.ContributeBroadcast(n, 0, g, c.Shape(n, n.Output[0]));
            }
        },
        ["Where"] = Where,
        ["ReduceSum"] = (c, n) => Reduce(c, n, Reduction.Sum),
        ["ReduceMean"] = (c, n) => Reduce(c, n, Reduction.Mean),
        ["ReduceMax"] = (c, n) => Reduce(c, n, Reduction.Extremum),
        ["ReduceMin"] = (c, n) => Reduce(c, n, Reduction.Extremum),
        ["ReduceL2"] = (c, n) => Reduce(c, n, Reduction.L2),
        ["ReduceLogSumExp"] = (c, n) => Reduce(c, n, Reduction.LogSumExp),
        ["ReduceSumSquare"] = (c, n) => Reduce(c, n, Reduction.SumSquare),
        ["GlobalMaxPool"] = GlobalMaxPool,
        ["Erf"] = Erf,
        ["Gelu"] = Gelu,
        ["Elu"] = Elu,
        ["Selu"] = Selu,
        ["Celu"] = Celu,
        ["HardSigmoid"] = HardSigmoid,
        ["HardSwish"] = HardSwish,
        ["Mish"] = Mish,
        ["Softsign"] = Softsign,
        ["Clip"] = Clip,
        ["PRelu"] = PRelu,
        ["Sum"] = (c, n) => SumOrMean(c, n, mean: false),
        ["Mean"] = (c, n) => SumOrMean(c, n, mean: true),
        ["Max"] = Extremum,
        ["Min"] = Extremum,
        ["Split"] = Split,
        ["Gather"] = Gather,
        ["Tile"] = Tile,
        ["DepthToSpace"] = DepthToSpace,
        ["SpaceToDepth"] = SpaceToDepth,
        ["CumSum"] = CumSum,
        ["Einsum"] = Einsum,
        ["ConvTranspose"] = ConvTranspose,
        ["InstanceNormalization"] = InstanceNormalization,
        ["LayerNormalization"] = LayerNormalization,
        ["GlobalAveragePool"] = GlobalAveragePool,
        ["MaxPool"] = MaxPool,
        ["AveragePool"] = AveragePool,
        ["Resize"] = Resize,
        ["Conv"] = Conv,
        ["Gemm"] = Gemm,
        ["MatMul"] = MatMul,
        ["BatchNormalization"] = BatchNormalization,
        ["GroupNormalization"] = GroupNormalization,
    };

    private static UnsupportedOperatorException Unsupported(NodeProto n, string detail) => new(n.OpType, VjpBuilder.NodeLabel(n), detail);

    private static void Unary(VjpContext c, NodeProto n, Func<string, string> rule)
    {
        if (c.Needs(n, 0) && c.GradOut(n) is { } g)
        {
            string gx = rule(g);
            if (c.Shapes.TryShape(n.Input[0]) is { } s && c.Shapes.TryShape(gx) is null)
            {
                c.Shapes.Set(gx, s);
            }
            c.Contribute(n, 0, gx);
        }
    }

    private static void Binary(VjpContext c, NodeProto n, Func<string, long[], string> left, Func<string, long[], string> right)
    {
        if (c.GradOut(n) is not { } g)
        {
            return;
        }
        var ys = c.Shape(n, n.Output[0]);
        if (c.Needs(n, 0))
        {
            c.ContributeBroadcast(n, 0, left(g, ys), ys);
        }
        if (c.Needs(n, 1))
        {
            c.ContributeBroadcast(n, 1, right(g, ys), ys);
        }
    }

    private static void Pow(VjpContext c, NodeProto n)
    {
        if (c.Needs(n, 1))
        {
            throw Unsupported(n, "the exponent depends on a differentiated value; only constant exponents are supported");
        }
        if (c.Needs(n, 0) && c.GradOut(n) is { } g)
        {
            var ys = c.Shape(n, n.Output[0]);
            string e = n.Input[1];
            string d = c.Mul(e, c.Op("Pow", [n.Input[0], c.Op("Sub", [e, c.Scalar(1)], null)], null), null);
            c.ContributeBroadcast(n, 0, c.Mul(g, d, ys), ys);
        }
    }

    private static void Cast(VjpContext c, NodeProto n)
    {
        long to = Attr.GetInt(n, "to", 0);
        if (to != TensorData.Float)
        {
            throw Unsupported(n, $"a cast of a differentiated value to element type {to}; only casts to float are differentiable");
        }
        Unary(c, n, g => g);
    }

    private static void Softmax(VjpContext c, NodeProto n)
    {
        if (c.Opset < 13)
        {
            throw Unsupported(n, "Softmax before opset 13 flattens its input; only opset 13+ is supported");
        }
        Unary(c, n, g =>
        {
            var y = n.Output[0];
            var ys = c.Shape(n, y);
            long axis = Attr.GetInt(n, "axis", -1);
            axis = axis < 0 ? axis + ys.Length : axis;
            var dot = c.ReduceSum(c.Mul(g, y, ys), [axis], true, null);
            return c.Mul(y, c.Op("Sub", [g, dot], ys), ys);
        });
    }

    private static void LogSoftmax(VjpContext c, NodeProto n)
    {
        Unary(c, n, g =>
        {
            var ys = c.Shape(n, n.Output[0]);
            long axis = Attr.GetInt(n, "axis", -1);
            axis = axis < 0 ? axis + ys.Length : axis;
            var sum = c.ReduceSum(g, [axis], true, null);
            return c.Op("Sub", [g, c.Mul(c.Op("Exp", [n.Output[0]], ys), sum, ys)], ys);
        });
    }

    private static void Transpose(VjpContext c, NodeProto n)
    {
        Unary(c, n, g =>
        {
            var xs = c.Shape(n, n.Input[0]);
            var perm = Attr.GetInts(n, "perm") ?? Enumerable.Range(0, xs.Length).Reverse().Select(i => (long)i).ToArray();
            var inverse = new long[perm.Length];
            for (int i = 0; i < perm.Length; i++)
            {
                inverse[perm[i]] = i;
            }
            return c.Transpose(g, c.Shapes.TryShape(g), inverse);
        });
    }

    private static void Concat(VjpContext c, NodeProto n)
    {
        if (c.GradOut(n) is not { } g)
        {
            return;
        }
        var ys = c.Shape(n, n.Output[0]);
        long axis = Attr.GetInt(n, "axis", 0);
        axis = axis < 0 ? axis + ys.Length : axis;
        long offset = 0;
        for (int i = 0; i < n.Input.Count; i++)
        {
            var xs = c.Shape(n, n.Input[i]);
            if (xs[axis] < 0)
            {
                throw Unsupported(n, "concatenation along the batch axis is not differentiable per example");
            }
            if (c.Needs(n, i))
            {
                var part = c.Op("Slice", [g, c.Ints(offset), c.Ints(offset + xs[axis]), c.Ints(axis)], xs);
                c.Contribute(n, i, part);
            }
            offset += xs[axis];
        }
    }

    private static void Slice(VjpContext c, NodeProto n)
    {
        if (!c.Needs(n, 0) || c.GradOut(n) is not { } g)
        {
            return;
        }
        var xs = c.Shape(n, n.Input[0]);
        var ranges = c.Shapes.SliceRanges(n, xs) ?? throw Unsupported(n, "starts, ends, axes and steps must be constants on a non-batch axis");
        var pads = new long[2 * xs.Length];
        var gs = c.Shape(n, n.Output[0]);
        for (int i = 0; i < xs.Length; i++)
        {
            var (s, e, step) = ranges[i];
            if (xs[i] < 0)
            {
                continue;
            }
            if (step != 1)
            {
                // Another step (negative too) selects single entries along the axis: the product with their one-hot matrix.
                var picked = new List<long>();
                for (long k = s; step > 0 ? k < e : k > e; k += step)
                {
                    picked.Add(k);
                }
                g = c.AlongAxis(n, g, gs, i, VjpContext.SelectionMatrix(xs[i], picked), xs[i]);
                gs = c.Shapes.TryShape(g)!;
                continue;
            }
            pads[i] = s;
            pads[i + xs.Length] = xs[i] - Math.Max(e, s);
        }
        c.Contribute(n, 0, pads.All(p => p == 0) ? g : c.Op("Pad", [g, c.Ints(pads)], xs));
    }

    private static void Pad(VjpContext c, NodeProto n)
    {
        if (!c.Needs(n, 0) || c.GradOut(n) is not { } g)
        {
            return;
        }
        var xs = c.Shape(n, n.Input[0]);
        var pads = c.Shapes.PadAmounts(n, xs.Length) ?? throw Unsupported(n, "pads and axes must be constant");
        string mode = Attr.GetString(n, "mode", "constant");
        if (mode != "constant" || pads.Any(p => p < 0))
        {
            // Each output entry along a padded axis reads one input entry (reflected, repeated at the edge, wrapped, or
            // none for constant padding): the product with that selection's one-hot matrix, axis by axis.
            var gs = c.Shape(n, n.Output[0]);
            for (int i = 0; i < xs.Length; i++)
            {
                if (pads[i] == 0 && pads[i + xs.Length] == 0)
                {
                    continue;
                }
                if (xs[i] < 0)
                {
                    throw Unsupported(n, "padding the batch axis is not differentiable per example");
                }
                long dim = xs[i];
                var sources = Enumerable.Range(0, (int)gs[i]).Select(j => PadSource(n, mode, j - pads[i], dim)).ToList();
                g = c.AlongAxis(n, g, gs, i, VjpContext.SelectionMatrix(dim, sources), dim);
                gs = c.Shapes.TryShape(g)!;
            }
            c.Contribute(n, 0, g);
            return;
        }
        var axes = new List<long>();
        var starts = new List<long>();
        var ends = new List<long>();
        for (int i = 0; i < xs.Length; i++)
        {
            if (pads[i] != 0 || pads[i + xs.Length] != 0)
            {
                axes.Add(i);
                starts.Add(pads[i]);
                ends.Add(pads[i] + xs[i]);
            }
        }
        c.Contribute(n, 0, axes.Count == 0 ? g : c.Op("Slice", [g, c.Ints([.. starts]), c.Ints([.. ends]), c.Ints([.. axes])], xs));
    }

    /// <summary>The input entry that padded position <paramref name="p"/> (relative to the input's start) reads, or −1 for none.</summary>
    private static long PadSource(NodeProto n, string mode, long p, long dim)
    {
        if (p >= 0 && p < dim)
        {
            return p;
        }
        switch (mode)
        {
            case "constant":
                return -1;
            case "edge":
                return Math.Clamp(p, 0, dim - 1);
            case "wrap":
                return ((p % dim) + dim) % dim;
            case "reflect":
                if (dim == 1)
                {
                    return 0;
                }
                long period = 2 * (dim - 1);
                long q = ((p % period) + period) % period;
                return q < dim ? q : period - q;
            default:
                throw Unsupported(n, $"mode '{mode}' is not an ONNX Pad mode");
        }
    }

    private static void Where(VjpContext c, NodeProto n)
    {
        if (c.GradOut(n) is not { } g)
        {
            return;
        }
        var ys = c.Shape(n, n.Output[0]);
        string zero = c.Scalar(0);
        if (c.Needs(n, 1))
        {
            c.ContributeBroadcast(n, 1, c.Op("Where", [n.Input[0], g, zero], ys), ys);
        }
        if (c.Needs(n, 2))
        {
            c.ContributeBroadcast(n, 2, c.Op("Where", [n.Input[0], zero, g], ys), ys);
        }
    }

    /// <summary>What a Reduce* op does to each element before summing, for its gradient.</summary>
    private enum Reduction
    {
        Sum,
        Mean,
        Extremum,
        L2,
        LogSumExp,
        SumSquare,
    }

    private static void Reduce(VjpContext c, NodeProto n, Reduction kind)
    {
        if (!c.Needs(n, 0) || c.GradOut(n) is not { } g)
        {
            return;
        }
        var xs = c.Shape(n, n.Input[0]);
        var axes = c.Shapes.ReduceAxes(n, xs.Length) ?? throw Unsupported(n, "the reduction axes must be constant");
        bool keep = Attr.GetInt(n, "keepdims", 1) != 0;
        string Kept(string v) => keep || axes.Count == 0 ? v : c.Unsqueeze(v, c.Shapes.TryShape(v), [.. axes.Order()]);
        string gk = Kept(g);
        string gx = c.Op("Expand", [gk, c.Op("Shape", [n.Input[0]], null)], xs);
        string x = n.Input[0];
        switch (kind)
        {
            case Reduction.Extremum:
                gx = c.Mul(gx, c.Op("Cast", [c.Op("Equal", [x, Kept(n.Output[0])], null)], null, Attr.Int("to", TensorData.Float)), xs);
                break;
            case Reduction.L2:
                gx = c.Mul(gx, c.Op("Div", [x, Kept(n.Output[0])], null), xs);
                break;
            case Reduction.LogSumExp:
                gx = c.Mul(gx, c.Op("Exp", [c.Op("Sub", [x, Kept(n.Output[0])], null)], null), xs);
                break;
            case Reduction.SumSquare:
                gx = c.Mul(gx, c.Mul(x, c.Scalar(2), null), xs);
                break;
        }
        if (kind == Reduction.Mean && axes.Count > 0)
        {
            if (axes.Any(a => xs[a] < 0))
            {
                throw Unsupported(n, "a mean over the batch axis mixes examples; per-example gradients are not defined");
            }
            long count = axes.Aggregate(1L, (p, a) => p * xs[a]);
            gx = c.Op("Div", [gx, c.Scalar(count)], xs);
        }
        c.Contribute(n, 0, gx);
    }

    private static void GlobalAveragePool(VjpContext c, NodeProto n)
    {
        if (!c.Needs(n, 0) || c.GradOut(n) is not { } g)
        {
            return;
        }
        var xs = c.Shape(n, n.Input[0]);
        long count = xs.Skip(2).Aggregate(1L, (p, d) => p * d);
        var gx = c.Op("Expand", [g, c.Op("Shape", [n.Input[0]], null)], xs);
        c.Contribute(n, 0, c.Op("Div", [gx, c.Scalar(count)], xs));
    }

    private static void MaxPool(VjpContext c, NodeProto n)
    {
        if (!c.Needs(n, 0) || c.GradOut(n) is not { } g)
        {
            return;
        }
        if (Attr.GetInt(n, "storage_order", 0) != 0)
        {
            throw Unsupported(n, "storage_order 1 is not supported");
        }
        // The forward node also returns the argmax indices (flat over N·C·H·W); the gradient scatters into them.
        if (n.Output.Count < 2 || n.Output[1].Length == 0)
        {
            string idx = c.B.Fresh(n.Output[0] + ".indices");
            if (n.Output.Count < 2)
            {
                n.Output.Add(idx);
            }
            else
            {
                n.Output[1] = idx;
            }
        }
        var xs = c.Shape(n, n.Input[0]);
        string flatIdx = c.Op("Reshape", [n.Output[1], c.Ints(-1)], null);
        string flatG = c.Op("Reshape", [g, c.Ints(-1)], null);
        string size = c.Op("Reshape", [c.Op("Size", [n.Input[0]], null), c.Ints(1)], null);
        string zeros = c.Op("ConstantOfShape", [size], null, Attr.Tensor("value", TensorData.FromFloats("zero", [0f], 1)));
        string scattered = c.Op("ScatterElements", [zeros, flatIdx, flatG], null, Attr.Int("axis", 0), Attr.String("reduction", "add"));
        string gx = c.ReshapeLike(scattered, n.Input[0]);
        c.Shapes.Set(gx, xs);
        c.Contribute(n, 0, gx);
    }

    /// <summary>A Conv's or pool's window; auto_pad SAME_UPPER/SAME_LOWER/VALID becomes explicit pads for the input shape <paramref name="xs"/>.</summary>
    private static (long[] Kernel, long[] Strides, long[] Pads, long[] Dilations) Window(NodeProto n, long[] kernel, long[] xs)
    {
        int spatial = xs.Length - 2;
        var strides = Attr.GetInts(n, "strides") ?? Enumerable.Repeat(1L, spatial).ToArray();
        var dil = Attr.GetInts(n, "dilations") ?? Enumerable.Repeat(1L, spatial).ToArray();
        var pads = ShapeInference.Pads(n, xs, kernel, strides, dil)
            ?? throw Unsupported(n, $"auto_pad '{Attr.GetString(n, "auto_pad", "")}' needs the spatial size, which is not static");
        return (kernel, strides, pads, dil);
    }

    /// <summary>output_padding that makes a ConvTranspose return exactly the forward input's spatial size.</summary>
    private static long[] OutputPadding(NodeProto n, long[] xs, long[] ys, long[] k, long[] strides, long[] pads, long[] dil)
    {
        int spatial = xs.Length - 2;
        var op = new long[spatial];
        for (int i = 0; i < spatial; i++)
        {
            long full = strides[i] * (ys[2 + i] - 1) + (k[i] - 1) * dil[i] + 1 - pads[i] - pads[i + spatial];
            op[i] = xs[2 + i] - full;
            if (op[i] < 0 || op[i] >= Math.Max(strides[i], dil[i]))
            {
                throw Unsupported(n, $"cannot invert the spatial size on axis {i} (input {xs[2 + i]}, output {ys[2 + i]})");
            }
        }
        return op;
    }

    private static void AveragePool(VjpContext c, NodeProto n)
    {
        if (!c.Needs(n, 0) || c.GradOut(n) is not { } g)
        {
            return;
        }
        var xs = c.Shape(n, n.Input[0]);
        var ys = c.Shape(n, n.Output[0]);
        int spatial = xs.Length - 2;
        if (spatial is < 1 or > 3)
        {
            throw Unsupported(n, $"only 1-D, 2-D and 3-D pooling is supported (input rank {xs.Length})");
        }
        var (k, strides, pads, dil) = Window(n, Attr.GetInts(n, "kernel_shape") ?? throw Unsupported(n, "kernel_shape is required"), xs);
        long channels = xs[1];
        long kk = ShapeInference.Product(k);
        long[] kernelShape = [channels, 1, .. k];
        bool includePad = Attr.GetInt(n, "count_include_pad", 0) != 0;
        if (Attr.GetInt(n, "ceil_mode", 0) != 0 || (pads.Any(p => p != 0) && !includePad))
        {
            // The divisor varies at the borders: divide the gradient by each window's count, spread it with a kernel of ones,
            // and pad the end so that windows reaching past the input (ceil_mode) fall off.
            if (dil.Any(d => d != 1))
            {
                throw Unsupported(n, "dilated pooling with ceil_mode or count_include_pad 0 is not supported");
            }
            var counts = Enumerable.Range(0, spatial).Select(i => WindowCounts(xs[2 + i], ys[2 + i], k[i], strides[i], pads[i], pads[i + spatial], includePad)).ToArray();
            var outSize = ys[2..];
            var inverse = new float[ShapeInference.Product(outSize)];
            for (int flat = 0; flat < inverse.Length; flat++)
            {
                long count = 1, rest = flat;
                for (int i = spatial - 1; i >= 0; i--)
                {
                    count *= counts[i][rest % outSize[i]];
                    rest /= outSize[i];
                }
                inverse[flat] = 1f / count;
            }
            string scaled = c.Mul(g, c.B.Constant("avgpool_inverse_counts", inverse, outSize), ys);
            string ones = c.B.Constant("avgpool_grad_ones", Enumerable.Repeat(1f, checked((int)(channels * kk))).ToArray(), kernelShape);
            var endPads = pads[spatial..];
            var outputPadding = new long[spatial];
            for (int i = 0; i < spatial; i++)
            {
                long reach = (ys[2 + i] - 1) * strides[i] + k[i] - pads[i] - endPads[i];     // ConvTranspose's natural size
                endPads[i] += Math.Max(0, reach - xs[2 + i]);
                outputPadding[i] = Math.Max(0, xs[2 + i] - reach);
            }
            c.Contribute(n, 0, c.Op("ConvTranspose", [scaled, ones], xs, Attr.Ints("kernel_shape", k), Attr.Ints("strides", strides),
                Attr.Ints("pads", [.. pads[..spatial], .. endPads]), Attr.Int("group", channels), Attr.Ints("output_padding", outputPadding)));
            return;
        }
        var weights = Enumerable.Repeat(1f / kk, checked((int)(channels * kk))).ToArray();
        string w = c.B.Constant("avgpool_grad_kernel", weights, kernelShape);
        var outPad = OutputPadding(n, xs, ys, k, strides, pads, dil);
        string gx = c.Op("ConvTranspose", [g, w], xs, Attr.Ints("kernel_shape", k), Attr.Ints("strides", strides), Attr.Ints("pads", pads),
            Attr.Ints("dilations", dil), Attr.Int("group", channels), Attr.Ints("output_padding", outPad));
        c.Contribute(n, 0, gx);
    }

    /// <summary>
    /// The divisor of each pooling window along one axis, as ONNX Runtime computes it: the window clipped to the padded input
    /// (count_include_pad 1) or to the input itself (0).
    /// </summary>
    private static long[] WindowCounts(long input, long output, long kernel, long stride, long padStart, long padEnd, bool includePad)
    {
        var counts = new long[output];
        for (long o = 0; o < output; o++)
        {
            long start = o * stride - padStart;
            long end = Math.Min(start + kernel, input + padEnd);
            long size = end - start;
            start = Math.Max(start, 0);
            end = Math.Min(end, input);
            counts[o] = includePad ? size : end - start;
        }
        return counts;
    }

    private static void Resize(VjpContext c, NodeProto n)
    {
        if (!c.Needs(n, 0) || c.GradOut(n) is not { } g)
        {
            return;
        }
        var xs = c.Shape(n, n.Input[0]);
        var ys = c.Shape(n, n.Output[0]);
        string mode = Attr.GetString(n, "mode", "nearest");
        string ctm = Attr.GetString(n, "coordinate_transformation_mode", "half_pixel");
        string nearest = Attr.GetString(n, "nearest_mode", "round_prefer_floor");
        bool floorMap = (ctm == "asymmetric" && nearest == "floor") || (ctm is "half_pixel" or "pytorch_half_pixel" && nearest == "round_prefer_floor");
        if (xs[0] != ys[0])
        {
            throw Unsupported(n, "resizing the batch axis is not supported");
        }
        long sh = xs.Length == 4 ? ys[2] / xs[2] : 0, sw = xs.Length == 4 ? ys[3] / xs[3] : 0;
        var scales = n.Input.Count > 2 ? c.Shapes.TryFloatConstant(n.Input[2]) : null;
        bool integerNearest = mode == "nearest" && floorMap && xs.Length == 4 && xs[1] == ys[1] && sh >= 1 && sw >= 1 && sh * xs[2] == ys[2] && sw * xs[3] == ys[3]
            && (scales is not { Length: 4 } || (scales[2] == sh && scales[3] == sw));
        if (!integerNearest)
        {
            // Any other nearest or linear resize is separable: per axis, each output entry is a weighted sum of input entries.
            if (mode is not ("nearest" or "linear") || Attr.GetInt(n, "antialias", 0) != 0 || (n.Input.Count > 4 && n.Input[4].Length > 0) || Attr.Find(n, "axes") is not null)
            {
                throw Unsupported(n, $"mode '{mode}' (antialias {Attr.GetInt(n, "antialias", 0)}): only nearest and linear resizing without antialias or axes are supported");
            }
            var gs = ys;
            for (int i = 1; i < xs.Length; i++)
            {
                float scale = scales is { Length: > 0 } ? scales[i] : (float)ys[i] / xs[i];
                if (xs[i] == ys[i] && scale == 1f)
                {
                    continue;
                }
                var matrix = ResizeMatrix(n, mode, ctm, nearest, xs[i], ys[i], scale);
                g = c.AlongAxis(n, g, gs, i, matrix, xs[i]);
                gs = c.Shapes.TryShape(g)!;
            }
            c.Contribute(n, 0, g);
            return;
        }
        // Each input pixel is copied to an sh×sw block: its gradient is the block's sum.
        string pooled = c.Op("AveragePool", [g], xs, Attr.Ints("kernel_shape", sh, sw), Attr.Ints("strides", sh, sw));
        c.Contribute(n, 0, c.Mul(pooled, c.Scalar(sh * sw), xs));
    }

    /// <summary>
    /// Resize along one axis as a matrix [input, output]: output o reads the input at x = the coordinate transformation of o,
    /// rounded by <paramref name="nearest"/> or linearly interpolated between ⌊x⌋ and ⌊x⌋ + 1 (x clamped to the input, as
    /// ONNX Runtime does).
    /// </summary>
    private static float[] ResizeMatrix(NodeProto n, string mode, string ctm, string nearest, long input, long output, float scale)
    {
        var m = new float[checked((int)(input * output))];
        for (long o = 0; o < output; o++)
        {
            double x = ctm switch
            {
                "half_pixel" => (o + 0.5) / scale - 0.5,
                "pytorch_half_pixel" => output > 1 ? (o + 0.5) / scale - 0.5 : 0,
                "asymmetric" => o / (double)scale,
                "align_corners" => output == 1 ? 0 : o * (input - 1) / (double)(output - 1),
                _ => throw Unsupported(n, $"coordinate_transformation_mode '{ctm}' is not supported"),
            };
            if (mode == "nearest")
            {
                double r = nearest switch
                {
                    "round_prefer_floor" => Math.Ceiling(x - 0.5),
                    "round_prefer_ceil" => Math.Floor(x + 0.5),
                    "floor" => Math.Floor(x),
                    "ceil" => Math.Ceiling(x),
                    _ => throw Unsupported(n, $"nearest_mode '{nearest}' is not supported"),
                };
                m[Math.Clamp((long)r, 0, input - 1) * output + o] = 1f;
                continue;
            }
            x = Math.Clamp(x, 0, input - 1);
            long x0 = (long)Math.Floor(x), x1 = Math.Min(x0 + 1, input - 1);
            float w1 = (float)(x - x0);
            m[x0 * output + o] += 1f - w1;
            m[x1 * output + o] += w1;
        }
        return m;
    }

    private static void Conv(VjpContext c, NodeProto n)
    {
        if (c.GradOut(n) is not { } g)
        {
            return;
        }
        string x = n.Input[0], w = n.Input[1];
        var xs = c.Shape(n, x);
        var ws = c.Shape(n, w);
        var ys = c.Shape(n, n.Output[0]);
        int spatial = xs.Length - 2;
        if (spatial is < 1 or > 3)
        {
            throw Unsupported(n, $"only 1-D, 2-D and 3-D convolutions are supported (input rank {xs.Length})");
        }
        var (k, strides, pads, dil) = Window(n, Attr.GetInts(n, "kernel_shape") ?? ws[2..], xs);
        long group = Attr.GetInt(n, "group", 1);
        long cin = xs[1], cout = ws[0];
        long[] spatialAxes = [.. Enumerable.Range(2, spatial).Select(i => (long)i)];

        if (c.Needs(n, 0))
        {
            var reach = Enumerable.Range(0, spatial).Select(i => dil[i] * (k[i] - 1)).ToArray();
            string gx;
            if (group == 1 && strides.All(v => v == 1) && Enumerable.Range(0, spatial).All(i => pads[i] <= reach[i] && pads[i + spatial] <= reach[i]))
            {
                // At stride 1 the input gradient is a convolution of g with the kernel flipped and its in/out channels swapped,
                // padded by the kernel's reach less the forward padding. ONNX Runtime runs Conv on its blocked-layout kernels and
                // ConvTranspose through im2col and col2im; the weight's transpose and flip fold to a constant at session start.
                string swapped = c.Transpose(w, ws, [1, 0, .. spatialAxes]);
                long[] swappedShape = [ws[1], ws[0], .. ws[2..]];
                string flipped = ShapeInference.Product(k) == 1 ? swapped
                    : c.Op("Slice", [swapped, c.Ints([.. Enumerable.Repeat(-1L, spatial)]), c.Ints([.. Enumerable.Repeat(long.MinValue, spatial)]), c.Ints(spatialAxes),
                        c.Ints([.. Enumerable.Repeat(-1L, spatial)])], swappedShape);
                gx = c.Op("Conv", [g, flipped], xs, Attr.Ints("kernel_shape", k), Attr.Ints("dilations", dil),
                    Attr.Ints("pads", [.. Enumerable.Range(0, 2 * spatial).Select(i => reach[i % spatial] - pads[i])]));
            }
            else
            {
                var outPad = OutputPadding(n, xs, ys, k, strides, pads, dil);
                gx = c.Op("ConvTranspose", [g, w], xs, Attr.Ints("kernel_shape", k), Attr.Ints("strides", strides), Attr.Ints("pads", pads),
                    Attr.Ints("dilations", dil), Attr.Int("group", group), Attr.Ints("output_padding", outPad));
            }
            c.Contribute(n, 0, gx);
        }
        if (c.Needs(n, 1))
        {
            if (!c.IsParameter(w))
            {
                throw Unsupported(n, $"the weight '{w}' is computed from differentiated values; only initializer weights are supported");
            }
            long positions = ShapeInference.Product(ys[2..]);
            long kk = ShapeInference.Product(k);
            long fan = cin * kk;
            string gm = c.ReshapePerExample(g, [cout, positions]);               // [B, out, S]
            if (group != 1 && (c.Options.KroneckerFactors || c.ProjectionOf(w) is not null))
            {
                throw Unsupported(n, $"Kronecker factors of grouped convolutions (group {group}) are not supported (per-example gradients are)");
            }
            if (c.ProjectionOf(w) is { } projection)
            {
                // P_inᵀaₛ at every position is a convolution of the input with P_in's columns as filters (the weight's layout,
                // so no unfolding), and P_outᵀgₛ one small matrix product.
                long kIn = projection.InputDim, kOut = projection.OutputDim;
                string filters = c.InputProjection(w, fan, transposed: true, [kIn, cin, .. k]);
                string ap = c.Op("Conv", [x, filters], [xs[0], kIn, .. ys[2..]], Attr.Ints("kernel_shape", k), Attr.Ints("strides", strides),
                    Attr.Ints("pads", pads), Attr.Ints("dilations", dil));
                string apT = c.Transpose(c.ReshapePerExample(ap, [kIn, positions]), [ShapeInference.Batch, kIn, positions], 0, 2, 1);
                string gp = c.Op("MatMul", [c.OutputProjection(w, cout, transposed: true, kOut, cout), gm], [ShapeInference.Batch, kOut, positions]);
                c.AddProjectedFactors(w, gp, apT);
            }
            if (c.Options.PerExampleGradients && !c.Options.KroneckerFactors)
            {
                // Per tap, dW[:, :, tap] = g · (input under the tap)ᵀ: no unfolded copy of the input (its Concat), and the stacked
                // taps are already in the weight's order [out, in, k·k]. A grouped convolution pairs each group's outputs with its inputs.
                long cg = cin / group, og = cout / group;
                string gGroups = group == 1 ? gm : c.ReshapePerExample(gm, [group, og, positions]);
                var parts = Taps(c, x, xs, ys, k, strides, pads, dil).Select(t =>
                {
                    if (group == 1)
                    {
                        string tt = c.Transpose(c.ReshapePerExample(t, [cin, positions]), [ShapeInference.Batch, cin, positions], 0, 2, 1);
                        string dt = c.Op("MatMul", [gm, tt], [ShapeInference.Batch, cout, cin]);
                        return c.Unsqueeze(dt, [ShapeInference.Batch, cout, cin], 3);
                    }
                    string tg = c.Transpose(c.ReshapePerExample(t, [group, cg, positions]), [ShapeInference.Batch, group, cg, positions], 0, 1, 3, 2);
                    string dg = c.Op("MatMul", [gGroups, tg], [ShapeInference.Batch, group, og, cg]);
                    return c.Unsqueeze(c.ReshapePerExample(dg, [cout, cg]), [ShapeInference.Batch, cout, cg], 3);
                }).ToList();
                string stacked = parts.Count == 1 ? parts[0] : c.Op("Concat", [.. parts], [ShapeInference.Batch, cout, cg, parts.Count], Attr.Int("axis", 3));
                c.AddParameterGradient(w, c.ReshapePerExample(stacked, ws));
            }
            else if (c.Options.PerExampleGradients || c.Options.KroneckerFactors)
            {
                string u = Unfold(c, x, xs, ys, k, strides, pads, dil);              // [B, k·k·in (tap-major), S]
                if (c.Options.PerExampleGradients)
                {
                    string dwTapMajor = c.Op("MatMul", [gm, c.Transpose(u, c.Shapes.TryShape(u), 0, 2, 1)], [ShapeInference.Batch, cout, fan]);
                    string dw = c.Transpose(c.ReshapePerExample(dwTapMajor, [cout, kk, cin]), [ShapeInference.Batch, cout, kk, cin], 0, 1, 3, 2);
                    c.AddParameterGradient(w, c.ReshapePerExample(dw, ws));
                }
                if (c.Options.KroneckerFactors)
                {
                    // a [B, S, in·k·k] in the weight's order: [B, k·k, in, S] → [B, S, in, k·k].
                    string a = c.ReshapePerExample(
                        c.Transpose(c.ReshapePerExample(u, [kk, cin, positions]), [ShapeInference.Batch, kk, cin, positions], 0, 3, 2, 1),
                        [positions, fan]);
                    c.AddFactors(w, a, c.Transpose(gm, c.Shapes.TryShape(gm), 0, 2, 1), positions, fan, cout);
                }
            }
        }
        if (c.Needs(n, 2))
        {
            PerChannel(c, n, 2, g, spatialAxes, cout);
        }
    }

    /// <summary>
    /// Unfolds a convolution's input (im2col) to [B, k·k·in, S] with one Pad, a strided Slice per kernel tap and one Concat along
    /// the channels: channel tap·in + c holds the input pixel under kernel tap number tap (row-major over the kernel) of channel c.
    /// </summary>
    private static string Unfold(VjpContext c, string x, long[] xs, long[] ys, long[] k, long[] strides, long[] pads, long[] dil)
    {
        long fan = xs[1] * ShapeInference.Product(k);
        var taps = Taps(c, x, xs, ys, k, strides, pads, dil);
        string unfolded = taps.Count == 1 ? taps[0] : c.Op("Concat", [.. taps], [xs[0], fan, .. ys[2..]], Attr.Int("axis", 1));
        return c.ReshapePerExample(unfolded, [fan, ShapeInference.Product(ys[2..])]);
    }

    /// <summary>The input under each kernel tap, tap-major (row-major over the kernel): values [B, in, …output size] (a Pad, then one strided Slice each).</summary>
    private static List<string> Taps(VjpContext c, string x, long[] xs, long[] ys, long[] k, long[] strides, long[] pads, long[] dil)
    {
        long cin = xs[1];
        int spatial = xs.Length - 2;
        long[] spatialAxes = [.. Enumerable.Range(2, spatial).Select(i => (long)i)];
        // Tap-major keeps the Concat a copy of whole blocks; the weight order (c·kh·kw + tap) is restored on the small
        // per-example gradient, not on the unfolded input. (A one-hot depthwise Conv would run as B·C tiny GEMMs.)
        string padded = pads.Any(v => v != 0)
            ? c.Op("Pad", [x, c.Ints([0, 0, .. pads[..spatial], 0, 0, .. pads[spatial..]])],
                [xs[0], cin, .. Enumerable.Range(0, spatial).Select(i => xs[2 + i] + pads[i] + pads[i + spatial])])
            : x;
        var taps = new List<string>();
        long count = ShapeInference.Product(k);
        for (long tap = 0; tap < count; tap++)
        {
            var start = new long[spatial];
            long rest = tap;
            for (int i = spatial - 1; i >= 0; i--)
            {
                start[i] = rest % k[i] * dil[i];
                rest /= k[i];
            }
            var end = Enumerable.Range(0, spatial).Select(i => start[i] + (ys[2 + i] - 1) * strides[i] + 1).ToArray();
            taps.Add(c.Op("Slice", [padded, c.Ints(start), c.Ints(end), c.Ints(spatialAxes), c.Ints(strides)], [xs[0], cin, .. ys[2..]]));
        }
        return taps;
    }

    /// <summary>
    /// Records the in-graph projection of a layer whose factors are <paramref name="a3"/> [B, S, inDim] and <paramref name="g3"/>
    /// [B, S, outDim] (Gemm: S = 1; MatMul on rank-3 inputs): Y = Σₛ (P_outᵀgₛ)(P_inᵀaₛ)ᵀ.
    /// </summary>
    private static void ProjectFactors(VjpContext c, string weight, string a3, string g3, long positions, long inDim, long outDim)
    {
        var projection = c.ProjectionOf(weight)!;
        long kIn = projection.InputDim, kOut = projection.OutputDim;
        string ap = c.Op("MatMul", [a3, c.InputProjection(weight, inDim, transposed: false, inDim, kIn)], [ShapeInference.Batch, positions, kIn]);
        string gp = c.Op("MatMul", [g3, c.OutputProjection(weight, outDim, transposed: false, outDim, kOut)], [ShapeInference.Batch, positions, kOut]);
        c.AddProjectedFactors(weight, c.Transpose(gp, c.Shapes.TryShape(gp), 0, 2, 1), ap);
    }

    private static void Gemm(VjpContext c, NodeProto n)
    {
        if (c.GradOut(n) is not { } g)
        {
            return;
        }
        bool transA = Attr.GetInt(n, "transA", 0) != 0, transB = Attr.GetInt(n, "transB", 0) != 0;
        float alpha = Attr.GetFloat(n, "alpha", 1f), beta = Attr.GetFloat(n, "beta", 1f);
        string a = n.Input[0], b = n.Input[1];
        var asz = c.Shape(n, a);
        if (transA)
        {
            // A is stored [K, M] with the batch on its axis 1: work with Aᵀ and transpose its gradient back.
            a = c.Transpose(a, asz, 1, 0);
            asz = [asz[1], asz[0]];
        }
        var bs = c.Shape(n, b);
        var ys = c.Shape(n, n.Output[0]);
        string ga = alpha == 1f ? g : c.Mul(g, c.Scalar(alpha), ys);
        if (c.Needs(n, 0))
        {
            string gx = transB ? c.Op("MatMul", [ga, b], asz) : c.Op("MatMul", [ga, c.Transpose(b, bs, 1, 0)], asz);
            c.Contribute(n, 0, transA ? c.Transpose(gx, asz, 1, 0) : gx);
        }
        if (c.Needs(n, 1))
        {
            if (c.IsParameter(b))
            {
                long k = asz[1], m = ys[1];
                string a3 = c.Unsqueeze(a, asz, 1);          // [B, 1, K]
                string g3 = c.Unsqueeze(ga, ys, 1);          // [B, 1, N]
                if (c.Options.PerExampleGradients)
                {
                    string dw = transB
                        ? c.Op("MatMul", [c.Unsqueeze(ga, ys, 2), a3], [ShapeInference.Batch, m, k])
                        : c.Op("MatMul", [c.Unsqueeze(a, asz, 2), g3], [ShapeInference.Batch, k, m]);
                    c.AddParameterGradient(b, dw);
                }
                if (c.Options.KroneckerFactors)
                {
                    c.AddFactors(b, a3, g3, 1, k, m);
                }
                if (c.ProjectionOf(b) is not null)
                {
                    ProjectFactors(c, b, a3, g3, 1, k, m);
                }
            }
            else
            {
                string gb = transB ? c.Op("MatMul", [c.Transpose(ga, ys, 1, 0), a], bs) : c.Op("MatMul", [c.Transpose(a, asz, 1, 0), ga], bs);
                c.Contribute(n, 1, gb);
            }
        }
        if (c.Needs(n, 2))
        {
            c.ContributeBroadcast(n, 2, beta == 1f ? g : c.Mul(g, c.Scalar(beta), ys), ys);
        }
    }

    private static void MatMul(VjpContext c, NodeProto n)
    {
        if (c.GradOut(n) is not { } g)
        {
            return;
        }
        string a = n.Input[0], b = n.Input[1];
        var asz = c.Shape(n, a);
        var bs = c.Shape(n, b);
        var ys = c.Shape(n, n.Output[0]);
        if (asz.Length < 2 || bs.Length < 2)
        {
            throw Unsupported(n, "1-D operands are not supported");
        }
        long[] Swap(int rank) => [.. Enumerable.Range(0, rank - 2).Select(i => (long)i), rank - 1, rank - 2];
        if (c.Needs(n, 0))
        {
            if (c.IsParameter(a))
            {
                throw Unsupported(n, $"parameter '{a}' is the left operand; per-example gradients are defined for the right operand (x·W)");
            }
            string bt = c.Transpose(b, bs, Swap(bs.Length));
            long[] gaShape = [.. ys[..^1], bs[^2]];
            string gx = c.Op("MatMul", [g, bt], gaShape);
            c.ContributeBroadcast(n, 0, gx, gaShape);
        }
        if (c.Needs(n, 1))
        {
            if (c.IsParameter(b) && bs.Length == 2 && asz.Length <= 3)
            {
                long k = bs[0], m = bs[1];
                string a3 = asz.Length == 2 ? c.Unsqueeze(a, asz, 1) : a;     // [B, S, K]
                string g3 = asz.Length == 2 ? c.Unsqueeze(g, ys, 1) : g;      // [B, S, N]
                long positions = asz.Length == 2 ? 1 : asz[1];
                if (c.Options.PerExampleGradients)
                {
                    string a3t = c.Transpose(a3, c.Shapes.TryShape(a3), 0, 2, 1);
                    c.AddParameterGradient(b, c.Op("MatMul", [a3t, g3], [ShapeInference.Batch, k, m]));
                }
                if (c.Options.KroneckerFactors)
                {
                    c.AddFactors(b, a3, g3, positions, k, m);
                }
                if (c.ProjectionOf(b) is not null)
                {
                    ProjectFactors(c, b, a3, g3, positions, k, m);
                }
            }
            else
            {
                // A batched weight, or an input of rank 4 and more: Aᵀ·g per example, summed over the weight's broadcast axes.
                if (c.IsParameter(b) && (c.Options.KroneckerFactors || c.ProjectionOf(b) is not null))
                {
                    throw Unsupported(n, $"Kronecker factors of '{b}' need a 2-D weight and an input of rank 2 or 3 (per-example gradients work)");
                }
                var gbShape = (long[])ys.Clone();
                gbShape[^2] = asz[^1];
                string gb = c.Op("MatMul", [c.Transpose(a, asz, Swap(asz.Length)), g], gbShape);
                c.ContributeBroadcast(n, 1, gb, gbShape);
            }
        }
    }

    private static long[] ChannelShape(long channels, int rank) => [channels, .. Enumerable.Repeat(1L, rank - 2)];

    private static void BatchNormalization(VjpContext c, NodeProto n)
    {
        if (c.GradOut(n) is not { } g)
        {
            return;
        }
        if (Attr.GetInt(n, "training_mode", 0) != 0 || n.Output.Count > 1 && n.Output.Skip(1).Any(o => o.Length > 0))
        {
            throw Unsupported(n, "training-mode batch normalization mixes examples; export the model in inference mode");
        }
        if (c.Needs(n, 3) || c.Needs(n, 4))
        {
            throw Unsupported(n, "the running mean and variance are statistics, not differentiable parameters");
        }
        var xs = c.Shape(n, n.Input[0]);
        long channels = xs[1];
        var cs = ChannelShape(channels, xs.Length);
        long[] spatialAxes = [.. Enumerable.Range(2, xs.Length - 2).Select(i => (long)i)];
        float eps = Attr.GetFloat(n, "epsilon", 1e-5f);
        string rstd = c.Op("Reciprocal", [c.Op("Sqrt", [c.Op("Add", [n.Input[4], c.Scalar(eps)], [channels])], [channels])], [channels]);
        if (c.Needs(n, 0))
        {
            string scale = c.ReshapeTo(c.Mul(n.Input[1], rstd, [channels]), cs);
            c.Contribute(n, 0, c.Mul(g, scale, xs));
        }
        if (c.Needs(n, 1))
        {
            string xhat = c.Mul(c.Op("Sub", [n.Input[0], c.ReshapeTo(n.Input[3], cs)], xs), c.ReshapeTo(rstd, cs), xs);
            PerChannel(c, n, 1, c.Mul(g, xhat, xs), spatialAxes, channels);
        }
        if (c.Needs(n, 2))
        {
            PerChannel(c, n, 2, g, spatialAxes, channels);
        }
    }

    /// <summary>A per-channel parameter's gradient: the sum over spatial positions (per example) of <paramref name="term"/>.</summary>
    private static void PerChannel(VjpContext c, NodeProto n, int index, string term, long[] spatialAxes, long channels)
    {
        if (c.IsParameter(n.Input[index]))
        {
            c.AddParameterGradient(n.Input[index], spatialAxes.Length == 0 ? term : c.ReduceSum(term, spatialAxes, false, [ShapeInference.Batch, channels]));
        }
        else
        {
            c.Contribute(n, index, c.ReduceSum(term, [0, .. spatialAxes], false, [channels]));
        }
    }

    private static void GroupNormalization(VjpContext c, NodeProto n)
    {
        if (c.GradOut(n) is not { } g)
        {
            return;
        }
        if (c.Opset < 21)
        {
            throw Unsupported(n, "GroupNormalization before opset 21 scales per group; only the opset-21 (per-channel) form is supported");
        }
        NormalizeGroups(c, n, g, Attr.GetInt(n, "num_groups", 0));
    }

    /// <summary>InstanceNormalization: group normalisation with one group per channel.</summary>
    private static void InstanceNormalization(VjpContext c, NodeProto n)
    {
        if (c.GradOut(n) is { } g)
        {
            NormalizeGroups(c, n, g, c.Shape(n, n.Input[0])[1]);
        }
    }

    /// <summary>
    /// y = γ_c·x̂ + β_c with x̂ normalised per example over <paramref name="groups"/> groups of channels (GroupNormalization-21,
    /// InstanceNormalization).
    /// </summary>
    private static void NormalizeGroups(VjpContext c, NodeProto n, string g, long groups)
    {
        var xs = c.Shape(n, n.Input[0]);
        long channels = xs[1];
        if (groups <= 0 || channels % groups != 0 || xs.Skip(1).Any(d => d < 0))
        {
            throw Unsupported(n, $"{groups} groups for {channels} channels of [{string.Join(",", xs)}]: need static non-batch sizes and channels divisible by the groups");
        }
        float eps = Attr.GetFloat(n, "epsilon", 1e-5f);
        long per = xs.Skip(1).Aggregate(1L, (p, d) => p * d) / groups;
        long[] rs = [ShapeInference.Batch, groups, per];
        long[] ms = [ShapeInference.Batch, groups, 1];
        var cs = ChannelShape(channels, xs.Length);
        long[] spatialAxes = [.. Enumerable.Range(2, xs.Length - 2).Select(i => (long)i)];

        // Recompute the normalised input: x̂ = (x − μ)·rstd per example and group.
        string xr = c.ReshapePerExample(n.Input[0], [groups, per]);
        string mean = c.ReduceMean(xr, [2], true, ms);
        string d = c.Op("Sub", [xr, mean], rs);
        string variance = c.ReduceMean(c.Mul(d, d, rs), [2], true, ms);
        string rstd = c.Op("Reciprocal", [c.Op("Sqrt", [c.Op("Add", [variance, c.Scalar(eps)], ms)], ms)], ms);
        string xhatR = c.Mul(d, rstd, rs);
        if (c.Needs(n, 0))
        {
            // ∂x = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = g·γ, means over each group.
            string gh = c.ReshapePerExample(c.Mul(g, c.ReshapeTo(n.Input[1], cs), xs), [groups, per]);
            string m1 = c.ReduceMean(gh, [2], true, ms);
            string m2 = c.ReduceMean(c.Mul(gh, xhatR, rs), [2], true, ms);
            string inner = c.Op("Sub", [c.Op("Sub", [gh, m1], rs), c.Mul(xhatR, m2, rs)], rs);
            string gx = c.ReshapeLike(c.Mul(rstd, inner, rs), n.Input[0]);
            c.Contribute(n, 0, gx);
        }
        if (c.Needs(n, 1))
        {
            string xhat = c.ReshapeLike(xhatR, n.Input[0]);
            PerChannel(c, n, 1, c.Mul(g, xhat, xs), spatialAxes, channels);
        }
        if (c.Needs(n, 2))
        {
            PerChannel(c, n, 2, g, spatialAxes, channels);
        }
    }
}
