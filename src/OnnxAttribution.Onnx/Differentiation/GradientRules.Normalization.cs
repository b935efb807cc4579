using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx.Differentiation;

/// <summary>Gradient rules of the normalisations: BatchNormalization, GroupNormalization, InstanceNormalization.</summary>
internal static partial class GradientRules
{
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
