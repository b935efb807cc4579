using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx.Differentiation;

/// <summary>Rules for ConvTranspose, LayerNormalization and GlobalMaxPool.</summary>
internal static partial class GradientRules
{
    /// <summary>
    /// ConvTranspose is the adjoint of Conv with the same weight: its input gradient is that Conv of the output gradient.
    /// The weight's per-example gradient is Σ_pos x[ci, pos]·g[co, under tap] per tap, within each group.
    /// </summary>
    private static void ConvTranspose(VjpContext c, NodeProto n)
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
        if (Attr.Find(n, "output_shape") is not null)
        {
            throw Unsupported(n, "output_shape is not supported; give pads and output_padding");
        }
        if (Attr.GetString(n, "auto_pad", "NOTSET") is not ("NOTSET" or ""))
        {
            throw Unsupported(n, "auto_pad is not supported for ConvTranspose; give explicit pads");
        }
        var (k, strides, pads, dil) = Window(n, Attr.GetInts(n, "kernel_shape") ?? ws[2..], xs);
        long group = Attr.GetInt(n, "group", 1);
        long cin = xs[1], cout = ys[1];
        if (c.Needs(n, 0))
        {
            c.Contribute(n, 0, c.Op("Conv", [g, w], xs, Attr.Ints("kernel_shape", k), Attr.Ints("strides", strides), Attr.Ints("pads", pads),
                Attr.Ints("dilations", dil), Attr.Int("group", group)));
        }
        if (c.Needs(n, 1))
        {
            if (!c.IsParameter(w))
            {
                throw Unsupported(n, $"the weight '{w}' is computed from differentiated values; only initializer weights are supported");
            }
            if (c.Options.KroneckerFactors || c.ProjectionOf(w) is not null)
            {
                throw Unsupported(n, "Kronecker factors of a transposed convolution are not supported (per-example gradients are)");
            }
            // The Conv that ConvTranspose is the adjoint of reads g under each tap at the input's positions; a group pairs its
            // input channels with its output channels.
            long positions = ShapeInference.Product(xs[2..]);
            long ig = cin / group, og = cout / group;
            string xg = c.ReshapePerExample(x, [group, ig, positions]);                      // [B, G, in/G, S]
            var parts = Taps(c, g, ys, xs, k, strides, pads, dil).Select(t =>
            {
                string tt = c.Transpose(c.ReshapePerExample(t, [group, og, positions]), [ShapeInference.Batch, group, og, positions], 0, 1, 3, 2);
                string dt = c.Op("MatMul", [xg, tt], [ShapeInference.Batch, group, ig, og]);
                return c.Unsqueeze(c.ReshapePerExample(dt, [cin, og]), [ShapeInference.Batch, cin, og], 3);
            }).ToList();
            string stacked = parts.Count == 1 ? parts[0] : c.Op("Concat", [.. parts], [ShapeInference.Batch, cin, og, parts.Count], Attr.Int("axis", 3));
            c.AddParameterGradient(w, c.ReshapePerExample(stacked, ws));
        }
        if (c.Needs(n, 2))
        {
            long[] spatialAxes = [.. Enumerable.Range(2, spatial).Select(i => (long)i)];
            PerChannel(c, n, 2, g, spatialAxes, cout);
        }
    }

    /// <summary>LayerNormalization over the axes from <c>axis</c> on: ∂x = rstd·(ĝ − mean ĝ − x̂·mean(ĝ·x̂)), ĝ = g·γ.</summary>
    private static void LayerNormalization(VjpContext c, NodeProto n)
    {
        if (c.GradOut(n, 1) is not null || c.GradOut(n, 2) is not null)
        {
            throw Unsupported(n, "its mean and inverse standard deviation outputs are not differentiated");
        }
        if (c.GradOut(n) is not { } g)
        {
            return;
        }
        var xs = c.Shape(n, n.Input[0]);
        long axis = Attr.GetInt(n, "axis", -1);
        axis = axis < 0 ? axis + xs.Length : axis;
        if (axis == 0 || xs[(int)axis..].Any(d => d < 0))
        {
            throw Unsupported(n, "normalising over the batch axis mixes examples");
        }
        float eps = Attr.GetFloat(n, "epsilon", 1e-5f);
        long[] axes = [.. Enumerable.Range((int)axis, xs.Length - (int)axis).Select(i => (long)i)];
        long[] ms = [.. xs.Select((d, i) => i >= axis ? 1 : d)];
        string x = n.Input[0];
        string d = c.Op("Sub", [x, c.ReduceMean(x, axes, true, ms)], xs);
        string variance = c.ReduceMean(c.Mul(d, d, xs), axes, true, ms);
        string rstd = c.Op("Reciprocal", [c.Op("Sqrt", [c.Op("Add", [variance, c.Scalar(eps)], ms)], ms)], ms);
        string xhat = c.Mul(d, rstd, xs);
        if (c.Needs(n, 0))
        {
            string gh = c.Mul(g, n.Input[1], xs);
            string m1 = c.ReduceMean(gh, axes, true, ms);
            string m2 = c.ReduceMean(c.Mul(gh, xhat, xs), axes, true, ms);
            string inner = c.Op("Sub", [c.Op("Sub", [gh, m1], xs), c.Mul(xhat, m2, xs)], xs);
            c.Contribute(n, 0, c.Mul(rstd, inner, xs));
        }
        if (c.Needs(n, 1))
        {
            c.ContributeBroadcast(n, 1, c.Mul(g, xhat, xs), xs);
        }
        if (c.Needs(n, 2))
        {
            c.ContributeBroadcast(n, 2, g, xs);
        }
    }

    /// <summary>GlobalMaxPool: the gradient goes to the maximum of each channel.</summary>
    private static void GlobalMaxPool(VjpContext c, NodeProto n)
    {
        if (!c.Needs(n, 0) || c.GradOut(n) is not { } g)
        {
            return;
        }
        var xs = c.Shape(n, n.Input[0]);
        string mask = c.Op("Cast", [c.Op("Equal", [n.Input[0], n.Output[0]], null)], xs, Attr.Int("to", TensorData.Float));
        c.Contribute(n, 0, c.Mul(c.Op("Expand", [g, c.Op("Shape", [n.Input[0]], null)], xs), mask, xs));
    }
}
