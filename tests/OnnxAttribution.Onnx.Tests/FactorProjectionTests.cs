using OnnxAttribution.Onnx.Differentiation;

namespace OnnxAttribution.Onnx.Tests;

/// <summary>The factored projection computed inside the gradient graph (VjpOptions.FactorProjections) against the same
/// projection applied to the graph's Kronecker factors outside it.</summary>
[TestFixture]
public sealed class FactorProjectionTests
{
    private const int Batch = 3;

    /// <summary>Conv (stride 2, pad 1) → Relu → Conv (3×3, dilation 2, pad 2) → Flatten → Gemm (transB) → Reshape → MatMul on [B, S, K].</summary>
    private static Proto.ModelProto Net()
    {
        var b = new GraphBuilder("net");
        var rng = new Random(7);
        b.Initializer("c1.weight", GradientHarness.Normal(rng, 4 * 2 * 9, 0.5f, 0), 4, 2, 3, 3);
        b.Initializer("c1.bias", GradientHarness.Normal(rng, 4, 0.5f, 0), 4);
        b.Initializer("c2.weight", GradientHarness.Normal(rng, 3 * 4 * 9, 0.3f, 0), 3, 4, 3, 3);
        b.Initializer("fc.weight", GradientHarness.Normal(rng, 10 * 48, 0.3f, 0), 10, 48);
        b.Initializer("fc.bias", GradientHarness.Normal(rng, 10, 0.3f, 0), 10);
        b.Initializer("mm.weight", GradientHarness.Normal(rng, 5 * 6, 0.5f, 0), 5, 6);
        b.Input("x", TensorData.Float, -1, 2, 8, 8);
        var h = b.Node("Conv", ["x", "c1.weight", "c1.bias"], null, Attr.Ints("pads", 1, 1, 1, 1), Attr.Ints("strides", 2, 2));
        h = b.Node("Relu", [h]);
        h = b.Node("Conv", [h, "c2.weight"], null, Attr.Ints("pads", 2, 2, 2, 2), Attr.Ints("dilations", 2, 2));
        h = b.Node("Flatten", [h], null, Attr.Int("axis", 1));
        h = b.Node("Gemm", [h, "fc.weight", "fc.bias"], null, Attr.Int("transB", 1));
        h = b.Node("Reshape", [h, b.ConstantInt64("shape", 0, 2, 5)]);
        var y = b.Node("MatMul", [h, "mm.weight"], "y");
        b.Output(y, TensorData.Float, -1, 2, 6);
        return b.Build();
    }

    private static List<FactorProjection> Projections(IReadOnlyList<FactorLayer> layers, int kIn, int kOut)
    {
        var rng = new Random(11);
        return layers.Select(l => new FactorProjection(l.Layer, GradientHarness.Normal(rng, (int)l.InDim * kIn, 1, 0), kIn,
            GradientHarness.Normal(rng, (int)l.OutDim * kOut, 1, 0), kOut)).ToList();
    }

    [Test]
    public void FactorLayers_ListsConvGemmAndMatMulWeightsInParameterOrder()
    {
        var layers = VjpBuilder.FactorLayers(Net());
        Assert.That(layers.Select(l => (l.Layer, l.Weight, l.Positions, l.InDim, l.OutDim)), Is.EqualTo(new[]
        {
            ("c1", "c1.weight", 16L, 18L, 4L), ("c2", "c2.weight", 16L, 36L, 3L), ("fc", "fc.weight", 1L, 48L, 10L), ("mm", "mm.weight", 2L, 5L, 6L),
        }));
    }

    [TestCase(3, 2)]
    [TestCase(1, 4)]
    public void ProjectedFactors_EqualProjectionOfTheFactors(int kIn, int kOut)
    {
        var forward = Net();
        var layers = VjpBuilder.FactorLayers(forward);
        var projections = Projections(layers, kIn, kOut);
        var projected = VjpBuilder.Build(forward, new VjpOptions { PerExampleGradients = false, FactorProjections = projections });
        var factored = VjpBuilder.Build(forward, new VjpOptions { PerExampleGradients = false, KroneckerFactors = true });
        var rng = new Random(5);
        var inputs = new Dictionary<string, (float[], long[])>
        {
            ["x"] = (GradientHarness.Normal(rng, Batch * 2 * 64, 1, 0), [Batch, 2, 8, 8]),
            ["cotangent"] = (GradientHarness.Normal(rng, Batch * 12, 1, 0), [Batch, 2, 6]),
        };
        var y = OrtHarness.RunFloat(projected, inputs, VjpBuilder.ProjectedFactorsOutput)[VjpBuilder.ProjectedFactorsOutput];
        var f = OrtHarness.RunFloat(factored, inputs, [.. layers.SelectMany(l => new[] { "a." + l.Layer, "g." + l.Layer })]);
        int width = layers.Count * kIn * kOut;
        Assert.That(y, Has.Length.EqualTo(Batch * width));
        double worst = 0, scale = 0;
        for (int e = 0; e < Batch; e++)
        {
            for (int l = 0; l < layers.Count; l++)
            {
                var (s, inDim, outDim) = ((int)layers[l].Positions, (int)layers[l].InDim, (int)layers[l].OutDim);
                var a = f["a." + layers[l].Layer];
                var g = f["g." + layers[l].Layer];
                for (int o = 0; o < kOut; o++)
                {
                    for (int i = 0; i < kIn; i++)
                    {
                        // (P_outᵀ Σₛ gₛ aₛᵀ P_in)[o, i] in float64.
                        double sum = 0;
                        for (int p = 0; p < s; p++)
                        {
                            double ga = 0, aa = 0;
                            for (int r = 0; r < outDim; r++)
                            {
                                ga += g[(e * s + p) * outDim + r] * (double)projections[l].Output[r * kOut + o];
                            }
                            for (int r = 0; r < inDim; r++)
                            {
                                aa += a[(e * s + p) * inDim + r] * (double)projections[l].Input[r * kIn + i];
                            }
                            sum += ga * aa;
                        }
                        worst = Math.Max(worst, Math.Abs(sum - y[e * width + l * kIn * kOut + o * kIn + i]));
                        scale = Math.Max(scale, Math.Abs(sum));
                    }
                }
            }
        }
        Assert.That(scale, Is.GreaterThan(0.1), "the reference is not all zeros");
        Assert.That(worst / scale, Is.LessThan(1e-5), "in-graph projection vs projected factors");
    }

    [Test]
    public void ProjectedOnly_DifferentiatesOnlyTheProjectedWeightsAndNeverUnfolds()
    {
        var forward = Net();
        var projections = Projections(VjpBuilder.FactorLayers(forward), 2, 2);
        var projected = VjpBuilder.Build(forward, new VjpOptions { PerExampleGradients = false, FactorProjections = projections });
        Assert.That(projected.Graph.Output.Select(o => o.Name), Is.EqualTo(new[] { "y", VjpBuilder.ProjectedFactorsOutput }));
        var ops = projected.Graph.Node.Skip(forward.Graph.Node.Count).Select(n => n.OpType).ToList();
        Assert.That(ops, Has.None.EqualTo("Pad"), "no im2col (it pads the input)");
        Assert.That(ops.Count(o => o == "Concat"), Is.EqualTo(1), "no im2col (it concatenates the taps); one Concat joins the layers' blocks");
        Assert.That(ops, Has.None.EqualTo("ReduceSum"), "no bias gradients");
    }

    [Test]
    public void Projection_OfTheWrongSize_IsAnErrorNamingTheLayer()
    {
        var forward = Net();
        var projections = Projections(VjpBuilder.FactorLayers(forward), 2, 2);
        projections[1] = projections[1] with { Input = new float[7] };
        var e = Assert.Throws<OnnxGraphException>(() => VjpBuilder.Build(forward, new VjpOptions { PerExampleGradients = false, FactorProjections = projections }));
        Assert.That(e!.Message, Does.Contain("'c2'").And.Contain("36 rows"));
    }

    [Test]
    public void Projection_Repeated_IsAnErrorNamingTheLayer()
    {
        var forward = Net();
        var projections = Projections(VjpBuilder.FactorLayers(forward), 2, 2);
        projections.Add(projections[2]);
        var e = Assert.Throws<OnnxGraphException>(() => VjpBuilder.Build(forward, new VjpOptions { PerExampleGradients = false, FactorProjections = projections }));
        Assert.That(e!.Message, Does.Contain("'fc'").And.Contain("more than one"));
    }

    [Test]
    public void NothingAskedFor_IsAnError()
    {
        var e = Assert.Throws<OnnxGraphException>(() => VjpBuilder.Build(Net(), new VjpOptions { PerExampleGradients = false, FactorProjections = [] }));
        Assert.That(e!.Message, Does.Contain("nothing to compute"));
    }

    [Test]
    public void Projection_OfAnUnknownLayer_IsAnErrorNamingIt()
    {
        var forward = Net();
        var projections = Projections(VjpBuilder.FactorLayers(forward), 2, 2);
        projections.Add(projections[0] with { Layer = "c9" });
        var e = Assert.Throws<OnnxGraphException>(() => VjpBuilder.Build(forward, new VjpOptions { FactorProjections = projections }));
        Assert.That(e!.Message, Does.Contain("'c9'"));
    }
}
