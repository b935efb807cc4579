using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx.Differentiation;

/// <summary>Rules for element-wise activations and the variadic element-wise ops (Sum, Mean, Max, Min).</summary>
internal static partial class GradientRules
{
    private static string Float(VjpContext c, string mask) => c.Op("Cast", [mask], null, Attr.Int("to", TensorData.Float));

    private static string Positive(VjpContext c, string x) => c.Op("Greater", [x, c.Scalar(0)], null);

    /// <summary>d erf(x)/dx = 2/√π · exp(−x²).</summary>
    private static void Erf(VjpContext c, NodeProto n) => Unary(c, n, g =>
    {
        string x = n.Input[0];
        string e = c.Op("Exp", [c.Op("Neg", [c.Mul(x, x, null)], null)], null);
        return c.Mul(g, c.Mul(e, c.Scalar((float)(2 / Math.Sqrt(Math.PI))), null), null);
    });

    /// <summary>Gelu (opset 20): exact, 0.5·(1 + erf(x/√2)) + x·φ(x); or the tanh approximation's derivative.</summary>
    private static void Gelu(VjpContext c, NodeProto n) => Unary(c, n, g =>
    {
        string x = n.Input[0];
        string approximate = Attr.GetString(n, "approximate", "none");
        string d;
        if (approximate == "tanh")
        {
            // y = 0.5x(1 + tanh u), u = √(2/π)(x + 0.044715x³): y' = 0.5(1 + t) + 0.5x(1 − t²)·√(2/π)(1 + 3·0.044715x²).
            const float k = 0.044715f;
            float s = (float)Math.Sqrt(2 / Math.PI);
            string x2 = c.Mul(x, x, null);
            string u = c.Mul(c.Op("Add", [x, c.Mul(c.Mul(x2, x, null), c.Scalar(k), null)], null), c.Scalar(s), null);
            string t = c.Op("Tanh", [u], null);
            string du = c.Mul(c.Op("Add", [c.Scalar(1), c.Mul(x2, c.Scalar(3 * k), null)], null), c.Scalar(s), null);
            string half = c.Mul(c.Op("Add", [c.Scalar(1), t], null), c.Scalar(0.5f), null);
            string rest = c.Mul(c.Mul(c.Mul(x, c.Op("Sub", [c.Scalar(1), c.Mul(t, t, null)], null), null), du, null), c.Scalar(0.5f), null);
            d = c.Op("Add", [half, rest], null);
        }
        else if (approximate == "none")
        {
            string cdf = c.Mul(c.Op("Add", [c.Scalar(1), c.Op("Erf", [c.Mul(x, c.Scalar((float)(1 / Math.Sqrt(2))), null)], null)], null), c.Scalar(0.5f), null);
            string pdf = c.Mul(c.Op("Exp", [c.Mul(c.Mul(x, x, null), c.Scalar(-0.5f), null)], null), c.Scalar((float)(1 / Math.Sqrt(2 * Math.PI))), null);
            d = c.Op("Add", [cdf, c.Mul(x, pdf, null)], null);
        }
        else
        {
            throw Unsupported(n, $"approximate '{approximate}' is not an ONNX Gelu mode");
        }
        return c.Mul(g, d, null);
    });

    /// <summary>Elu: 1 for x &gt; 0, y + α otherwise.</summary>
    private static void Elu(VjpContext c, NodeProto n) => Unary(c, n, g =>
    {
        float alpha = Attr.GetFloat(n, "alpha", 1f);
        return c.Op("Where", [Positive(c, n.Input[0]), g, c.Mul(g, c.Op("Add", [n.Output[0], c.Scalar(alpha)], null), null)], null);
    });

    /// <summary>Selu: γ for x &gt; 0, y + γα otherwise.</summary>
    private static void Selu(VjpContext c, NodeProto n) => Unary(c, n, g =>
    {
        float alpha = Attr.GetFloat(n, "alpha", 1.67326319217681884765625f);
        float gamma = Attr.GetFloat(n, "gamma", 1.05070102214813232421875f);
        return c.Op("Where", [Positive(c, n.Input[0]), c.Mul(g, c.Scalar(gamma), null), c.Mul(g, c.Op("Add", [n.Output[0], c.Scalar(gamma * alpha)], null), null)], null);
    });

    /// <summary>Celu: 1 for x &gt; 0, exp(x/α) otherwise.</summary>
    private static void Celu(VjpContext c, NodeProto n) => Unary(c, n, g =>
    {
        float alpha = Attr.GetFloat(n, "alpha", 1f);
        string e = c.Op("Exp", [c.Mul(n.Input[0], c.Scalar(1 / alpha), null)], null);
        return c.Op("Where", [Positive(c, n.Input[0]), g, c.Mul(g, e, null)], null);
    });

    /// <summary>HardSigmoid: α where 0 &lt; αx + β &lt; 1, else 0.</summary>
    private static void HardSigmoid(VjpContext c, NodeProto n) => Unary(c, n, g =>
    {
        float alpha = Attr.GetFloat(n, "alpha", 0.2f), beta = Attr.GetFloat(n, "beta", 0.5f);
        return c.Mul(g, c.Mul(HardSigmoidSlope(c, n.Input[0], alpha, beta), c.Scalar(alpha), null), null);
    });

    /// <summary>1 where 0 &lt; αx + β &lt; 1 (the linear part of the hard sigmoid), else 0.</summary>
    private static string HardSigmoidSlope(VjpContext c, string x, float alpha, float beta)
    {
        string z = c.Op("Add", [c.Mul(x, c.Scalar(alpha), null), c.Scalar(beta)], null);
        return Float(c, c.Op("And", [c.Op("Greater", [z, c.Scalar(0)], null), c.Op("Less", [z, c.Scalar(1)], null)], null));
    }

    /// <summary>HardSwish y = x·hardsigmoid(x) (α = 1/6, β = 0.5): y' = hardsigmoid(x) + x/6 on the linear part.</summary>
    private static void HardSwish(VjpContext c, NodeProto n) => Unary(c, n, g =>
    {
        string x = n.Input[0];
        string hs = c.Op("HardSigmoid", [x], null, Attr.Float("alpha", 1f / 6), Attr.Float("beta", 0.5f));
        string d = c.Op("Add", [hs, c.Mul(c.Mul(x, c.Scalar(1f / 6), null), HardSigmoidSlope(c, x, 1f / 6, 0.5f), null)], null);
        return c.Mul(g, d, null);
    });

    /// <summary>Mish y = x·tanh(softplus x): y' = tanh(sp) + x·(1 − tanh²(sp))·sigmoid(x).</summary>
    private static void Mish(VjpContext c, NodeProto n) => Unary(c, n, g =>
    {
        string x = n.Input[0];
        string t = c.Op("Tanh", [c.Op("Softplus", [x], null)], null);
        string rest = c.Mul(c.Mul(x, c.Op("Sub", [c.Scalar(1), c.Mul(t, t, null)], null), null), c.Op("Sigmoid", [x], null), null);
        return c.Mul(g, c.Op("Add", [t, rest], null), null);
    });

    /// <summary>Softsign y = x/(1 + |x|): y' = 1/(1 + |x|)².</summary>
    private static void Softsign(VjpContext c, NodeProto n) => Unary(c, n, g =>
    {
        string d = c.Op("Add", [c.Scalar(1), c.Op("Abs", [n.Input[0]], null)], null);
        return c.Op("Div", [g, c.Mul(d, d, null)], null);
    });

    /// <summary>Clip: the gradient passes where min ≤ x ≤ max (the bounds included, as PyTorch's clamp does).</summary>
    private static void Clip(VjpContext c, NodeProto n)
    {
        if (c.Needs(n, 1) || c.Needs(n, 2))
        {
            throw Unsupported(n, "the bounds depend on a differentiated value; only constant bounds are supported");
        }
        Unary(c, n, g =>
        {
            string x = n.Input[0];
            string? below = n.Input.Count > 1 && n.Input[1].Length > 0 ? c.Op("Less", [x, n.Input[1]], null) : null;
            string? above = n.Input.Count > 2 && n.Input[2].Length > 0 ? c.Op("Greater", [x, n.Input[2]], null) : null;
            string? outside = below is null ? above : above is null ? below : c.Op("Or", [below, above], null);
            return outside is null ? g : c.Op("Where", [outside, c.Scalar(0), g], null);
        });
    }

    /// <summary>PRelu y = x for x &gt; 0, slope·x otherwise; the slope (broadcast) may be a parameter.</summary>
    private static void PRelu(VjpContext c, NodeProto n)
    {
        if (c.GradOut(n) is not { } g)
        {
            return;
        }
        var ys = c.Shape(n, n.Output[0]);
        string positive = Positive(c, n.Input[0]);
        if (c.Needs(n, 0))
        {
            c.ContributeBroadcast(n, 0, c.Op("Where", [positive, g, c.Mul(g, n.Input[1], ys)], ys), ys);
        }
        if (c.Needs(n, 1))
        {
            c.ContributeBroadcast(n, 1, c.Op("Where", [positive, c.Scalar(0), c.Mul(g, n.Input[0], ys)], ys), ys);
        }
    }

    /// <summary>Sum and Mean: every input gets the output gradient (divided by the count for Mean), summed over its broadcast axes.</summary>
    private static void SumOrMean(VjpContext c, NodeProto n, bool mean)
    {
        if (c.GradOut(n) is not { } g)
        {
            return;
        }
        var ys = c.Shape(n, n.Output[0]);
        string share = mean ? c.Mul(g, c.Scalar(1f / n.Input.Count), ys) : g;
        for (int i = 0; i < n.Input.Count; i++)
        {
            if (c.Needs(n, i))
            {
                c.ContributeBroadcast(n, i, share, ys);
            }
        }
    }

    /// <summary>Max and Min: the gradient goes to the inputs equal to the output (ties, of measure zero, get it each).</summary>
    private static void Extremum(VjpContext c, NodeProto n)
    {
        if (c.GradOut(n) is not { } g)
        {
            return;
        }
        var ys = c.Shape(n, n.Output[0]);
        for (int i = 0; i < n.Input.Count; i++)
        {
            if (c.Needs(n, i))
            {
                string mask = Float(c, c.Op("Equal", [n.Input[i], n.Output[0]], null));
                c.ContributeBroadcast(n, i, c.Mul(g, mask, ys), ys);
            }
        }
    }
}
