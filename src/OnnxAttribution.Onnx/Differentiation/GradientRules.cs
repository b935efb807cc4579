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
}
