using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx.Differentiation;

/// <summary>Gradient rules of Conv, Gemm and MatMul, with the in-graph projection of their per-example factors.</summary>
internal static partial class GradientRules
{
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

}
