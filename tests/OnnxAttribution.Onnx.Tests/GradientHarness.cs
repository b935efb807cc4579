using OnnxAttribution.Onnx.Differentiation;
using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx.Tests;

/// <summary>A one-op (or few-op) forward graph to differentiate: input <c>x</c>, parameters, output <c>y</c>.</summary>
/// <param name="Name">Shown in the test name.</param>
/// <param name="XShape">The input's shape; axis 0 is the batch.</param>
/// <param name="Build">Adds the nodes from <c>x</c> and returns the output's name.</param>
/// <param name="Parameters">Trainable initializers: name, shape, and how to fill them (seeded normal × scale + offset).</param>
/// <param name="Linear">The output is linear in x and in every parameter, so float32 differences with step 1 are exact.</param>
/// <param name="PositiveX">Inputs drawn as |N(0,1)| + 0.5 (for Log, Sqrt, Div, Pow).</param>
/// <param name="Opset">The opset of the graph.</param>
/// <param name="Float32">A nonlinear op without float64 kernels in ONNX Runtime: float32 central differences with step 1e-2.</param>
public sealed record GradientCase(
    string Name,
    long[] XShape,
    Func<GraphBuilder, string, string> Build,
    (string Name, long[] Shape, float Offset)[] Parameters,
    bool Linear = false,
    bool PositiveX = false,
    int Opset = GraphBuilder.DefaultOpset,
    bool Float32 = false)
{
    /// <summary>The largest relative error the check accepts: float32 differences are exact for linear ops, O(h²) otherwise.</summary>
    public double Tolerance => Linear ? 1e-4 : Float32 ? 3e-3 : 2e-4;

    public override string ToString() => Name;
}

/// <summary>
/// Checks a gradient graph against central finite differences of the forward graph: in float64 (ONNX Runtime's double
/// kernels) for nonlinear ops, in float32 with step 1 for ops linear in every differentiated value (exact up to rounding),
/// in float32 with step 1e-2 for nonlinear ops that ONNX Runtime runs in float32 only.
/// Every parameter's per-example gradient is checked example by example, and the input gradient along random directions.
/// </summary>
internal static class GradientHarness
{
    public const int Batch = 2;

    public static (ModelProto Forward, Dictionary<string, float[]> Values) Forward(GradientCase c, int seed)
    {
        var rng = new Random(seed);
        var b = new GraphBuilder("case");
        var values = new Dictionary<string, float[]>();
        foreach (var (name, shape, offset) in c.Parameters)
        {
            var data = Normal(rng, (int)TensorData.ElementCount(shape), 0.7f, offset);
            b.Initializer(name, data, shape);
            values[name] = data;
        }
        b.Input("x", TensorData.Float, [-1, .. c.XShape[1..]]);
        string y = c.Build(b, "x");
        b.Output(y, TensorData.Float);
        var x = Normal(rng, (int)TensorData.ElementCount(c.XShape), 1f, 0f);
        if (c.PositiveX)
        {
            x = x.Select(v => MathF.Abs(v) + 0.5f).ToArray();
        }
        values["x"] = x;
        return (b.Build(opset: c.Opset), values);
    }

    /// <summary>Returns the worst relative error over all checks.</summary>
    public static double MaxRelativeError(GradientCase c, int seed = 1)
    {
        var (forward, values) = Forward(c, seed);
        var vjp = VjpBuilder.Build(forward, new VjpOptions { Parameters = c.Parameters.Select(p => p.Name).ToList(), InputGradients = ["x"] });
        string y = forward.Graph.Output[0].Name;
        var rng = new Random(seed + 100);
        var probe = OrtHarness.RunFloat(forward, new Dictionary<string, (float[], long[])> { ["x"] = (values["x"], c.XShape) }, y);
        int ySize = probe[y].Length;
        var cot = Normal(rng, ySize, 1f, 0f);
        var ys = YShape(forward, c.XShape, ySize);

        var outputs = new List<string> { "grad.x" };
        outputs.AddRange(c.Parameters.Select(p => "grad." + p.Name));
        var got = OrtHarness.RunFloat(vjp, new Dictionary<string, (float[], long[])>
        {
            ["x"] = (values["x"], c.XShape),
            ["cotangent"] = (cot, ys),
        }, [.. outputs]);

        var evaluate = Evaluator(c, forward, y);
        double worst = 0;

        // Input gradient along random directions, whole batch.
        for (int trial = 0; trial < 3; trial++)
        {
            var v = Normal(rng, values["x"].Length, 1f, 0f);
            double fd = Directional(evaluate, values, "x", v, cot, Step(c));
            double an = Dot(got["grad.x"], v);
            worst = Math.Max(worst, Relative(an, fd));
        }

        // Per-example parameter gradients: the cotangent of one example only.
        int perExample = ySize / Batch;
        foreach (var p in c.Parameters)
        {
            var g = got["grad." + p.Name];
            int n = values[p.Name].Length;
            Assert.That(g, Has.Length.EqualTo(Batch * n), $"grad.{p.Name} size");
            for (int e = 0; e < Batch; e++)
            {
                var masked = new float[cot.Length];
                Array.Copy(cot, e * perExample, masked, e * perExample, perExample);
                for (int trial = 0; trial < 2; trial++)
                {
                    var v = Normal(rng, n, 1f, 0f);
                    double fd = Directional(evaluate, values, p.Name, v, masked, Step(c));
                    double an = Dot(g.AsSpan(e * n, n), v);
                    worst = Math.Max(worst, Relative(an, fd));
                }
            }
        }
        return worst;
    }

    private static long[] YShape(ModelProto forward, long[] xShape, int size)
    {
        var dims = forward.Graph.Output[0].Type?.TensorType?.Shape?.Dim;
        if (dims is { Count: > 0 })
        {
            return dims.Select(d => d.DimValue).ToArray();
        }
        // Shapes of the output are not declared in the test graphs: infer through the gradient builder's shape pass.
        var vjp = VjpBuilder.Build(forward, new VjpOptions { InputGradients = ["x"], Parameters = [] });
        var cot = vjp.Graph.Input.First(i => i.Name == "cotangent").Type.TensorType.Shape.Dim;
        var shape = cot.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? d.DimValue : xShape[0]).ToArray();
        Assert.That(TensorData.ElementCount(shape), Is.EqualTo(size), "inferred output shape");
        return shape;
    }

    /// <summary>L(values) = ⟨cot, y(values)⟩, in float64 or (for linear cases) float32.</summary>
    private static Func<Dictionary<string, double[]>, double[], double> Evaluator(GradientCase c, ModelProto forward, string y)
    {
        if (c.Linear || c.Float32)
        {
            return (vals, cot) =>
            {
                var m = WithInitializers(forward, vals, asDouble: false);
                var r = OrtHarness.RunFloat(m, new Dictionary<string, (float[], long[])> { ["x"] = (vals["x"].Select(v => (float)v).ToArray(), c.XShape) }, y)[y];
                return Dot(r, cot);
            };
        }
        return (vals, cot) =>
        {
            var m = OrtHarness.ToDouble(WithInitializers(forward, vals, asDouble: true));
            var r = OrtHarness.RunDouble(m, new Dictionary<string, (double[], long[])> { ["x"] = (vals["x"], c.XShape) }, y);
            double s = 0;
            for (int i = 0; i < r.Length; i++)
            {
                s += r[i] * cot[i];
            }
            return s;
        };
    }

    /// <summary>The forward model with its parameters replaced by <paramref name="vals"/>, stored as float32 or float64.</summary>
    private static ModelProto WithInitializers(ModelProto forward, Dictionary<string, double[]> vals, bool asDouble)
    {
        var m = forward.Clone();
        for (int i = 0; i < m.Graph.Initializer.Count; i++)
        {
            var t = m.Graph.Initializer[i];
            if (vals.TryGetValue(t.Name, out var v))
            {
                m.Graph.Initializer[i] = asDouble
                    ? DoubleTensor(t.Name, v, t.Dims.ToArray())
                    : TensorData.FromFloats(t.Name, v.Select(d => (float)d).ToArray(), t.Dims.ToArray());
            }
        }
        return m;
    }

    private static TensorProto DoubleTensor(string name, double[] v, long[] dims)
    {
        var t = new TensorProto { Name = name, DataType = TensorData.Double };
        t.Dims.AddRange(dims);
        t.DoubleData.AddRange(v);
        return t;
    }

    private static double Step(GradientCase c) => c.Linear ? 1.0 : c.Float32 ? 1e-2 : 1e-5;

    private static double Directional(Func<Dictionary<string, double[]>, double[], double> evaluate, Dictionary<string, float[]> values, string wrt, float[] v, float[] cot, double h)
    {
        var cotD = cot.Select(x => (double)x).ToArray();
        Dictionary<string, double[]> Shifted(double s)
        {
            var d = values.ToDictionary(kv => kv.Key, kv => kv.Value.Select(x => (double)x).ToArray());
            var target = d[wrt];
            for (int i = 0; i < target.Length; i++)
            {
                target[i] += s * v[i];
            }
            return d;
        }
        return (evaluate(Shifted(h), cotD) - evaluate(Shifted(-h), cotD)) / (2 * h);
    }

    private static double Relative(double analytic, double reference) =>
        Math.Abs(analytic - reference) / Math.Max(Math.Abs(reference), 1e-3);

    private static double Dot(ReadOnlySpan<float> a, float[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++)
        {
            s += (double)a[i] * b[i];
        }
        return s;
    }

    private static double Dot(float[] a, double[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++)
        {
            s += a[i] * b[i];
        }
        return s;
    }

    public static float[] Normal(Random rng, int n, float scale, float offset)
    {
        var r = new float[n];
        for (int i = 0; i < n; i++)
        {
            r[i] = offset + scale * (float)TestRandom.Normal(rng);
        }
        return r;
    }
}
