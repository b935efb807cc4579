using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx.Differentiation;

/// <summary>Gradient rules of reductions, pooling and Resize (the operator table is in GradientRules.cs).</summary>
internal static partial class GradientRules
{
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
}
