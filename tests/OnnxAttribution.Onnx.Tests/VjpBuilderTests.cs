using OnnxAttribution.Onnx.Differentiation;

namespace OnnxAttribution.Onnx.Tests;

[TestFixture]
public sealed class VjpBuilderTests
{
    private static Proto.ModelProto SmallConvNet(GraphBuilder b)
    {
        var rng = new Random(3);
        b.Initializer("conv.weight", GradientHarness.Normal(rng, 4 * 2 * 9, 0.5f, 0), 4, 2, 3, 3);
        b.Initializer("conv.bias", GradientHarness.Normal(rng, 4, 0.5f, 0), 4);
        b.Initializer("fc.weight", GradientHarness.Normal(rng, 3 * 16, 0.5f, 0), 3, 16);
        b.Initializer("fc.bias", GradientHarness.Normal(rng, 3, 0.5f, 0), 3);
        b.Input("x", TensorData.Float, -1, 2, 4, 4);
        var h = b.Node("Conv", ["x", "conv.weight", "conv.bias"], null, Attr.Ints("pads", 1, 1, 1, 1), Attr.Ints("strides", 2, 2));
        h = b.Node("Relu", [h]);
        h = b.Node("Flatten", [h], null, Attr.Int("axis", 1));
        var y = b.Node("Gemm", [h, "fc.weight", "fc.bias"], "y", Attr.Int("transB", 1));
        b.Output(y, TensorData.Float, -1, 3);
        return b.Build();
    }

    [Test]
    public void Build_KroneckerFactors_SumToPerExampleGradient()
    {
        var forward = SmallConvNet(new GraphBuilder("net"));
        var vjp = VjpBuilder.Build(forward, new VjpOptions { KroneckerFactors = true });
        var rng = new Random(5);
        var x = GradientHarness.Normal(rng, 3 * 2 * 16, 1, 0);
        var cot = GradientHarness.Normal(rng, 3 * 3, 1, 0);
        var r = OrtHarness.RunFloat(vjp, new Dictionary<string, (float[], long[])> { ["x"] = (x, [3, 2, 4, 4]), ["cotangent"] = (cot, [3, 3]) },
            "grad.conv.weight", "a.conv", "g.conv", "grad.fc.weight", "a.fc", "g.fc");
        foreach (var (layer, positions, inDim, outDim) in new[] { ("conv", 4, 18, 4), ("fc", 1, 16, 3) })
        {
            var a = r[$"a.{layer}"];
            var g = r[$"g.{layer}"];
            var grad = r[$"grad.{layer}.weight"];
            Assert.That(a, Has.Length.EqualTo(3 * positions * inDim));
            Assert.That(g, Has.Length.EqualTo(3 * positions * outDim));
            double worst = 0;
            for (int e = 0; e < 3; e++)
            {
                for (int o = 0; o < outDim; o++)
                {
                    for (int i = 0; i < inDim; i++)
                    {
                        double s = 0;
                        for (int p = 0; p < positions; p++)
                        {
                            s += g[(e * positions + p) * outDim + o] * a[(e * positions + p) * inDim + i];
                        }
                        worst = Math.Max(worst, Math.Abs(s - grad[(e * outDim + o) * inDim + i]));
                    }
                }
            }
            Assert.That(worst, Is.LessThan(1e-5), $"{layer}: Σ_s g_s a_sᵀ vs grad");
        }
    }

    [Test]
    public void Build_PerExampleGradients_SumToBatchGradientOfConcatenatedExamples()
    {
        // The per-example gradient of example e must not depend on the other examples in the batch.
        var forward = SmallConvNet(new GraphBuilder("net"));
        var vjp = VjpBuilder.Build(forward);
        var rng = new Random(9);
        var x = GradientHarness.Normal(rng, 2 * 2 * 16, 1, 0);
        var cot = GradientHarness.Normal(rng, 2 * 3, 1, 0);
        var both = OrtHarness.RunFloat(vjp, new Dictionary<string, (float[], long[])> { ["x"] = (x, [2, 2, 4, 4]), ["cotangent"] = (cot, [2, 3]) }, "grad.conv.weight");
        var second = OrtHarness.RunFloat(vjp, new Dictionary<string, (float[], long[])> { ["x"] = (x[32..], [1, 2, 4, 4]), ["cotangent"] = (cot[3..], [1, 3]) }, "grad.conv.weight");
        Assert.That(both["grad.conv.weight"][72..], Is.EqualTo(second["grad.conv.weight"]).Within(1e-5));
    }

    [Test]
    public void DefaultParameters_SmallConvNet_SelectsLayerWeightsAndBiases()
    {
        var forward = SmallConvNet(new GraphBuilder("net"));
        Assert.That(VjpBuilder.DefaultParameters(forward), Is.EqualTo(new[] { "conv.weight", "conv.bias", "fc.weight", "fc.bias" }));
    }

    [Test]
    public void DefaultParameters_ConstantOnTimestepPath_IsNotAParameter()
    {
        var b = new GraphBuilder("g");
        b.Input("x", TensorData.Float, -1, 4);
        b.Input("t", TensorData.Int64, -1);
        b.Initializer("freq", [1f, 2f, 3f, 4f], 1, 4);
        b.Initializer("scale", [1f, 2f, 3f, 4f], 4);
        var t = b.Node("Unsqueeze", [b.Node("Cast", ["t"], null, Attr.Int("to", TensorData.Float)), b.ConstantInt64("ax", 1)]);
        var emb = b.Node("Sin", [b.Node("Mul", [t, "freq"])]);
        var y = b.Node("Add", [b.Node("Mul", ["x", "scale"]), emb], "y");
        b.Output(y, TensorData.Float, -1, 4);
        Assert.That(VjpBuilder.DefaultParameters(b.Build()), Is.EqualTo(new[] { "scale" }));
    }

    [Test]
    public void Build_OpWithoutRule_ThrowsNamingOpAndNode()
    {
        var b = new GraphBuilder("g");
        b.Initializer("w", [1f, 2f, 3f], 3);
        b.Input("x", TensorData.Float, -1, 3);
        var h = b.Node("Mul", ["x", "w"]);
        var y = b.Node("Hardmax", [h], "y");
        b.Output(y, TensorData.Float, -1, 3);
        var e = Assert.Throws<UnsupportedOperatorException>(() => VjpBuilder.Build(b.Build(), new VjpOptions { Parameters = ["w"] }));
        Assert.That(e!.OpType, Is.EqualTo("Hardmax"));
        Assert.That(e.Message, Does.Contain("Hardmax").And.Contain("n_y"));
    }

    [Test]
    public void Build_ParameterFeedingUnsupportedUse_ThrowsNamingParameter()
    {
        var b = new GraphBuilder("g");
        b.Initializer("w", [1f, 2f, 3f], 3);
        b.Input("x", TensorData.Float, -1, 3);
        var y = b.Node("Mul", ["x", b.Node("Exp", ["w"])], "y");
        b.Output(y, TensorData.Float, -1, 3);
        var e = Assert.Throws<UnsupportedOperatorException>(() => VjpBuilder.Build(b.Build(), new VjpOptions { Parameters = ["w"] }));
        Assert.That(e!.Message, Does.Contain("'w'").And.Contain("Exp"));
    }

    [TestCase(0.5f, -0.5f, 0f)]
    [TestCase(0f, 1f, 0f)]
    [TestCase(0f, 0f, 0.25f)]
    public void Build_CotangentFromOutput_EqualsTheExplicitCotangent(float w0, float w1, float w2)
    {
        var forward = SmallConvNet(new GraphBuilder("net"));
        var measured = VjpBuilder.Build(forward, new VjpOptions { CotangentFromOutput = true });
        var plain = VjpBuilder.Build(forward, new VjpOptions());
        Assert.That(measured.Graph.Input.Select(i => i.Name), Is.EqualTo(new[] { "x", "target", "cotangent_weights" }));
        var rng = new Random(8);
        var x = GradientHarness.Normal(rng, 3 * 2 * 16, 1, 0);
        var target = GradientHarness.Normal(rng, 3 * 3, 1, 0);
        var m = OrtHarness.RunFloat(measured, new Dictionary<string, (float[], long[])>
        {
            ["x"] = (x, [3, 2, 4, 4]), ["target"] = (target, [3, 3]), ["cotangent_weights"] = ([w0, w1, w2], [3]),
        }, "y", "grad.conv.weight", "grad.fc.weight");
        // The explicit cotangent from the output of the same forward pass.
        var cotangent = m["y"].Zip(target, (y, t) => w0 * y + w1 * t + w2).ToArray();
        var p = OrtHarness.RunFloat(plain, new Dictionary<string, (float[], long[])> { ["x"] = (x, [3, 2, 4, 4]), ["cotangent"] = (cotangent, [3, 3]) },
            "grad.conv.weight", "grad.fc.weight");
        foreach (var name in new[] { "grad.conv.weight", "grad.fc.weight" })
        {
            Assert.That(p[name].Max(MathF.Abs), Is.GreaterThan(1e-3f), name);
            Assert.That(m[name], Is.EqualTo(p[name]).Within(1e-5f), name);
        }
    }

    [Test]
    public void Build_CotangentFromOutput_UnusedParameterGetsPerExampleZeros()
    {
        // A parameter the output does not depend on gets zeros shaped by the batch, read from the (computed) cotangent.
        var b = new GraphBuilder("net");
        var forward = SmallConvNet(b);
        forward.Graph.Initializer.Add(TensorData.FromFloats("unused.weight", [1f, 2f, 3f, 4f, 5f, 6f], 2, 3));
        var vjp = VjpBuilder.Build(forward, new VjpOptions { Parameters = ["conv.weight", "unused.weight"], CotangentFromOutput = true });
        var rng = new Random(2);
        var r = OrtHarness.RunFloat(vjp, new Dictionary<string, (float[], long[])>
        {
            ["x"] = (GradientHarness.Normal(rng, 4 * 2 * 16, 1, 0), [4, 2, 4, 4]),
            ["target"] = (GradientHarness.Normal(rng, 4 * 3, 1, 0), [4, 3]),
            ["cotangent_weights"] = ([1f, -1f, 0f], [3]),
        }, "grad.unused.weight", "grad.conv.weight");
        Assert.That(r["grad.unused.weight"], Has.Length.EqualTo(4 * 6).And.All.EqualTo(0f));
        Assert.That(r["grad.conv.weight"].Max(MathF.Abs), Is.GreaterThan(0f));
    }

    [Test]
    public void Build_PerExampleGradientsAlone_EqualThoseBuiltBesideTheFactors()
    {
        // Alone, a Conv's weight gradient is summed tap by tap; beside the factors it comes from the unfolded input.
        var forward = SmallConvNet(new GraphBuilder("net"));
        var alone = VjpBuilder.Build(forward, new VjpOptions());
        var withFactors = VjpBuilder.Build(forward, new VjpOptions { KroneckerFactors = true });
        Assert.That(alone.Graph.Node.Count(n => n.OpType == "Concat" && n.Attribute.Any(a => a.Name == "axis" && a.I == 1)), Is.Zero, "no unfolded input");
        var rng = new Random(6);
        var inputs = new Dictionary<string, (float[], long[])>
        {
            ["x"] = (GradientHarness.Normal(rng, 3 * 2 * 16, 1, 0), [3, 2, 4, 4]),
            ["cotangent"] = (GradientHarness.Normal(rng, 3 * 3, 1, 0), [3, 3]),
        };
        var a = OrtHarness.RunFloat(alone, inputs, "grad.conv.weight")["grad.conv.weight"];
        var b = OrtHarness.RunFloat(withFactors, inputs, "grad.conv.weight")["grad.conv.weight"];
        Assert.That(b.Max(MathF.Abs), Is.GreaterThan(1e-3f));
        Assert.That(a, Is.EqualTo(b).Within(1e-5f));
    }

    [Test]
    public void Build_UnknownParameterName_ThrowsNamingIt()
    {
        var forward = SmallConvNet(new GraphBuilder("net"));
        var e = Assert.Throws<OnnxGraphException>(() => VjpBuilder.Build(forward, new VjpOptions { Parameters = ["conv.wieght"] }));
        Assert.That(e!.Message, Does.Contain("conv.wieght"));
    }

    [Test]
    public void Build_OutputsFollowContract_InputsAndOrder()
    {
        var forward = SmallConvNet(new GraphBuilder("net"));
        var vjp = VjpBuilder.Build(forward, new VjpOptions { KroneckerFactors = true });
        Assert.That(vjp.Graph.Input.Select(i => i.Name), Is.EqualTo(new[] { "x", "cotangent" }));
        Assert.That(vjp.Graph.Output.Select(o => o.Name), Is.EqualTo(new[]
        {
            "y", "grad.conv.weight", "grad.conv.bias", "grad.fc.weight", "grad.fc.bias", "a.conv", "g.conv", "a.fc", "g.fc",
        }));
    }

    [Test]
    public void Build_UpstreamOpWithoutShapeInference_ErrorNamesTheBlockingNode()
    {
        // LpNormalization has no shape inference here: the Add after it and the Softmax after that have no shape either,
        // and the error must name LpNormalization, not the Softmax whose rule first needs a shape.
        var b = new GraphBuilder("g");
        b.Initializer("p", [1f, 2f, 3f], 3);
        b.Input("x", TensorData.Float, -1, 3);
        var h = b.Node("Add", [b.Node("Mul", ["x", "p"]), b.Node("LpNormalization", ["x"], "blocker")]);
        var y = b.Node("Softmax", [h], "y");
        b.Output(y, TensorData.Float, -1, 3);
        var e = Assert.Throws<UnsupportedOperatorException>(() => VjpBuilder.Build(b.Build(), new VjpOptions { Parameters = ["p"] }));
        Assert.That(e!.OpType, Is.EqualTo("LpNormalization"));
        Assert.That(e.NodeName, Is.EqualTo("n_blocker"));
        Assert.That(e.Message, Does.Contain("Softmax"));
    }

    [Test]
    public void Build_UndeclaredOutputShapeBlockedUpstream_ErrorNamesTheBlockingNode()
    {
        var b = new GraphBuilder("g");
        b.Initializer("p", [1f, 2f, 3f], 3);
        b.Input("x", TensorData.Float, -1, 3);
        var y = b.Node("Relu", [b.Node("Mul", [b.Node("LpNormalization", ["x"], "blocker"), "p"])], "y");
        b.Output(y, TensorData.Float);
        var e = Assert.Throws<OnnxGraphException>(() => VjpBuilder.Build(b.Build(), new VjpOptions { Parameters = ["p"] }));
        Assert.That(e!.Message, Does.Contain("'y'").And.Contain("n_blocker").And.Contain("LpNormalization"));
    }

    [Test]
    public void DefaultParameters_WeightsThroughViewsAndEmbeddingTables_AreFound()
    {
        // PyTorch's Linear without bias (MatMul by a transposed weight), a weight cast and reshaped on its way, a class
        // embedding looked up by the data and a positional table read at fixed rows.
        var b = new GraphBuilder("g");
        b.Initializer("linear.weight", new float[20], 4, 5);
        b.Initializer("proj.weight", new float[16], 16);
        b.Initializer("classes.weight", new float[6], 2, 3);
        b.Initializer("pos.weight", new float[24], 6, 4);
        b.Input("x", TensorData.Float, -1, 3, 5);
        b.Input("label", TensorData.Int64, -1);
        var h = b.Node("MatMul", ["x", b.Node("Transpose", ["linear.weight"], null, Attr.Ints("perm", 1, 0))]);              // [B, 3, 4]
        h = b.Node("Add", [h, b.Node("Gather", ["pos.weight", b.ConstantInt64("rows", 0, 1, 2)])]);
        var w = b.Node("Reshape", [b.Node("Cast", [b.Node("Identity", ["proj.weight"])], null, Attr.Int("to", TensorData.Float)), b.ConstantInt64("s", 4, 4)]);
        h = b.Node("MatMul", [h, w]);
        var y = b.Node("Mul", [h, b.Node("Unsqueeze", [b.Node("ReduceSum", [b.Node("Gather", ["classes.weight", "label"]), b.ConstantInt64("ax", 1)]), b.ConstantInt64("ax2", 1, 2)])], "y");
        b.Output(y, TensorData.Float, -1, 3, 4);
        var model = b.Build();
        Assert.That(VjpBuilder.DefaultParameters(model), Is.EquivalentTo(new[] { "linear.weight", "proj.weight", "classes.weight", "pos.weight" }));
        var vjp = VjpBuilder.Build(model);
        Assert.That(vjp.Graph.Output.Select(o => o.Name), Is.EqualTo(new[] { "y", "grad.linear.weight", "grad.proj.weight", "grad.classes.weight", "grad.pos.weight" }));
    }

    [Test]
    public void Build_ParameterListedTwice_ThrowsNamingIt()
    {
        var forward = SmallConvNet(new GraphBuilder("net"));
        var e = Assert.Throws<OnnxGraphException>(() => VjpBuilder.Build(forward, new VjpOptions { Parameters = ["fc.weight", "conv.bias", "fc.weight"] }));
        Assert.That(e!.Message, Does.Contain("'fc.weight' is listed 2 times"));
    }

    [Test]
    public void Build_SeveralOutputsNoneNamed_ThrowsListingThemAndTheOption()
    {
        var forward = SmallConvNet(new GraphBuilder("net"));
        forward.Graph.Output.Add(GraphBuilder.ValueInfo("flatten", TensorData.Float, [-1, 16]));
        var e = Assert.Throws<OnnxGraphException>(() => VjpBuilder.Build(forward));
        Assert.That(e!.Message, Does.Contain("y, flatten").And.Contain("--output"));
        var missing = Assert.Throws<OnnxGraphException>(() => VjpBuilder.Build(forward, new VjpOptions { Output = "z" }));
        Assert.That(missing!.Message, Does.Contain("no output 'z'"));
    }

    [Test]
    public void Build_NamedOutputOfSeveral_DifferentiatesThatOutputOnly()
    {
        var forward = SmallConvNet(new GraphBuilder("net"));
        forward.Graph.Output.Insert(0, GraphBuilder.ValueInfo("flatten", TensorData.Float, [-1, 16]));
        var vjp = VjpBuilder.Build(forward, new VjpOptions { Output = "y", Parameters = ["fc.weight"] });
        Assert.That(vjp.Graph.Output.Select(o => o.Name), Is.EqualTo(new[] { "y", "grad.fc.weight" }));
        var conv = VjpBuilder.Build(forward, new VjpOptions { Output = "flatten", Parameters = ["conv.weight"] });
        Assert.That(conv.Graph.Output.Select(o => o.Name), Is.EqualTo(new[] { "flatten", "grad.conv.weight" }));
    }

    [Test]
    public void Build_FactorsOfTransposedWeight_RefusedNamingTheWeight()
    {
        var b = new GraphBuilder("g");
        b.Initializer("fc.weight", new float[20], 4, 5);
        b.Input("x", TensorData.Float, -1, 5);
        var y = b.Node("MatMul", ["x", b.Node("Transpose", ["fc.weight"])], "y");
        b.Output(y, TensorData.Float, -1, 4);
        var e = Assert.Throws<OnnxGraphException>(() => VjpBuilder.Build(b.Build(), new VjpOptions { KroneckerFactors = true }));
        Assert.That(e!.Message, Does.Contain("fc.weight").And.Contain("Transpose"));
    }
}
