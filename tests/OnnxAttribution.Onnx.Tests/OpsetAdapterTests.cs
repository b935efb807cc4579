using OnnxAttribution.Onnx.Differentiation;
using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx.Tests;

/// <summary>
/// The opset adapter: small graphs written in the forms of opsets 7–12 and 23–25 give the same outputs in ONNX Runtime
/// before and after conversion, and what cannot be converted is refused with the node named.
/// </summary>
[TestFixture]
public sealed class OpsetAdapterTests
{
    private static readonly long[] XShape = [2, 3, 4, 4];

    private static string Op(GraphBuilder b, string op, string[] inputs, params AttributeProto[] a) => OpGradientTests.Op(b, op, inputs, a);

    private static string Ints(GraphBuilder b, params long[] v) => OpGradientTests.Ints(b, v);

    /// <summary>One branch per op whose form changed up to opset 13, each a graph output, in the form of <paramref name="opset"/>.</summary>
    private static ModelProto OldOpsetGraph(int opset)
    {
        var b = new GraphBuilder("old");
        var rng = new Random(opset);
        b.Initializer("w", GradientHarness.Normal(rng, 48 * 3, 0.3f, 0), 48, 3);
        b.Initializer("scale", [1f, 0.5f, 2f], 3);
        b.Initializer("shift", [0.1f, 0f, -0.2f], 3);
        b.Initializer("mean", [0f, 0.3f, -0.1f], 3);
        b.Initializer("var", [1f, 2f, 0.5f], 3);
        string x = b.Input("x", TensorData.Float, -1, 3, 4, 4);
        var outputs = new List<string>();
        void Output(string name) => outputs.Add(b.Node("Identity", [name], "out_" + outputs.Count));
        bool old13 = opset < 13;

        var u = old13 ? Op(b, "Unsqueeze", [x], Attr.Ints("axes", 0)) : Op(b, "Unsqueeze", [x, Ints(b, 0)]);
        var sq = old13 ? Op(b, "Squeeze", [u], Attr.Ints("axes", 0)) : Op(b, "Squeeze", [u, Ints(b, 0)]);
        Output(old13 ? Op(b, "ReduceSum", [sq], Attr.Ints("axes", 3), Attr.Int("keepdims", 0)) : Op(b, "ReduceSum", [sq, Ints(b, 3)], Attr.Int("keepdims", 0)));
        Output(Op(b, "ReduceMean", [x], Attr.Ints("axes", 1, 2)));
        Output(opset < 10
            ? Op(b, "Slice", [x], Attr.Ints("starts", 1, 0), Attr.Ints("ends", 3, -1), Attr.Ints("axes", 2, 3))
            : Op(b, "Slice", [x, Ints(b, 1, 0), Ints(b, 3, -1), Ints(b, 2, 3)]));
        Output(opset < 11
            ? Op(b, "Pad", [x], Attr.Ints("pads", 0, 0, 1, 2, 0, 1, 0, 1), Attr.Float("value", 0.5f))
            : Op(b, "Pad", [x, Ints(b, 0, 0, 1, 2, 0, 1, 0, 1), b.Scalar("pv", 0.5f)]));
        Output(opset < 11 ? Op(b, "Clip", [x], Attr.Float("min", -0.3f), Attr.Float("max", 0.4f)) : Op(b, "Clip", [x, b.Scalar("lo", -0.3f), b.Scalar("hi", 0.4f)]));
        Output(opset < 11 ? Op(b, "Clip", [x], Attr.Float("max", 0.2f)) : Op(b, "Clip", [x, "", b.Scalar("hi2", 0.2f)]));
        Output(opset switch
        {
            < 9 => Op(b, "Upsample", [x], Attr.Floats("scales", 1, 1, 2, 3)),
            9 => Op(b, "Upsample", [x, b.Constant("s", [1f, 1f, 2f, 3f], 4)], Attr.String("mode", "linear")),
            10 => Op(b, "Resize", [x, b.Constant("s", [1f, 1f, 2f, 2f], 4)]),
            _ => Op(b, "Resize", [x, b.Constant("roi", [], 0), b.Constant("s", [1f, 1f, 2f, 2f], 4)], Attr.String("mode", "linear")),
        });
        Output(opset < 9
            ? Op(b, "BatchNormalization", [x, "scale", "shift", "mean", "var"], Attr.Int("spatial", 1))
            : Op(b, "BatchNormalization", [x, "scale", "shift", "mean", "var"]));
        Output(opset < 12 ? Op(b, "Dropout", [x], Attr.Float("ratio", 0.3f)) : Op(b, "Dropout", [x, b.Scalar("ratio", 0.3f)]));
        Output(Op(b, "Softmax", [x], Attr.Int("axis", 1)));
        Output(Op(b, "LogSoftmax", [x]));
        Output(Op(b, "Softmax", [x], Attr.Int("axis", -1)));
        var parts = old13
            ? b.NodeMulti("Split", [x], ["part0", "part1"], Attr.Int("axis", 1), Attr.Ints("split", 1, 2))
            : b.NodeMulti("Split", [x, Ints(b, 1, 2)], ["part0", "part1"], Attr.Int("axis", 1));
        Output(parts[1]);
        Output(b.NodeMulti("Split", [x], ["half0", "half1"], Attr.Int("axis", 3))[1]);
        Output(Op(b, "Gemm", [Op(b, "Flatten", [x]), "w", "shift"])); // out_14: the one differentiated
        Output(opset < 10 ? b.NodeMulti("TopK", [Op(b, "Flatten", [x])], ["top", "topi"], Attr.Int("k", 3))[0] : b.NodeMulti("TopK", [Op(b, "Flatten", [x]), Ints(b, 3)], ["top", "topi"])[0]);
        foreach (var o in outputs)
        {
            b.Output(o, TensorData.Float);
        }
        return b.Build(opset: opset, irVersion: opset < 8 ? 3 : 4);
    }

    /// <summary>The ops whose element types widened after opset 22, in a graph at <paramref name="opset"/>.</summary>
    private static ModelProto NewOpsetGraph(int opset)
    {
        var b = new GraphBuilder("new");
        var rng = new Random(opset);
        b.Initializer("w", GradientHarness.Normal(rng, 2 * 3 * 9, 0.3f, 0), 2, 3, 3, 3);
        b.Initializer("ln", GradientHarness.Normal(rng, 8, 0.3f, 1), 8);
        string x = b.Input("x", TensorData.Float, -1, 3, 4, 4);
        var h = Op(b, "Conv", [x, "w"], Attr.Ints("pads", 1, 1, 1, 1));
        h = Op(b, "Pad", [h, Ints(b, 0, 0, 1, 1, 0, 0, 1, 1)]);                                   // [B, 2, 6, 6]
        h = Op(b, "Transpose", [Op(b, "Reshape", [h, Ints(b, 0, 2, 36)])], Attr.Ints("perm", 0, 2, 1)); // [B, 36, 2]
        h = Op(b, "Squeeze", [Op(b, "Unsqueeze", [h, Ints(b, 1)]), Ints(b, 1)]);
        h = Op(b, "Reshape", [Op(b, "Cast", [Op(b, "Identity", [h])], Attr.Int("to", TensorData.Float)), Ints(b, 0, 9, 8)]);
        h = Op(b, "Gelu", [Op(b, "LayerNormalization", [h, "ln"])]);
        var y = Op(b, "Flatten", [h]);
        b.Output(y, TensorData.Float);
        return b.Build(opset: opset, irVersion: opset >= 25 ? 11 : 10);
    }

    private static void AssertSameOutputs(ModelProto original, ModelProto converted)
    {
        var x = GradientHarness.Normal(new Random(1), (int)TensorData.ElementCount(XShape), 1f, 0f);
        var inputs = new Dictionary<string, (float[], long[])> { ["x"] = (x, XShape) };
        var names = original.Graph.Output.Select(o => o.Name).ToArray();
        var before = OrtHarness.RunFloat(original, inputs, names);
        var after = OrtHarness.RunFloat(converted, inputs, names);
        foreach (var name in names)
        {
            Assert.That(after[name], Has.Length.EqualTo(before[name].Length), name);
            Assert.That(after[name], Is.EqualTo(before[name]).Within(1e-5f), $"output {name}");
        }
    }

    [TestCase(7)]
    [TestCase(8)]
    [TestCase(9)]
    [TestCase(10)]
    [TestCase(11)]
    [TestCase(12)]
    public void Convert_OldOpset_SameOutputsInOnnxRuntime(int opset)
    {
        var original = OldOpsetGraph(opset);
        var converted = OpsetAdapter.Convert(original);
        Assert.That(OpsetAdapter.OpsetOf(converted), Is.EqualTo(OpsetAdapter.LowestTarget));
        Assert.That(converted.Graph.Node.Select(n => n.OpType), Does.Not.Contain("Upsample"));
        AssertSameOutputs(original, converted);
    }

    [TestCase(23)]
    [TestCase(24)]
    [TestCase(25)]
    [TestCase(26)]
    public void Convert_NewOpset_SameOutputsInOnnxRuntime(int opset)
    {
        var original = NewOpsetGraph(opset);
        var converted = OpsetAdapter.Convert(original);
        Assert.That(OpsetAdapter.OpsetOf(converted), Is.EqualTo(OpsetAdapter.HighestTarget));
        AssertSameOutputs(original, converted);
    }

    [TestCase(7)]
    [TestCase(11)]
    [TestCase(24)]
    public void Build_AnySupportedOpset_DifferentiatesTheNamedOutput(int opset)
    {
        var model = opset < 13 ? OldOpsetGraph(opset) : NewOpsetGraph(opset);
        string output = opset < 13 ? "out_14" : model.Graph.Output[0].Name;
        var vjp = VjpBuilder.Build(model, new VjpOptions { Output = output, Parameters = ["w"], InputGradients = ["x"] });
        Assert.That(vjp.Graph.Output.Select(o => o.Name), Is.EqualTo(new[] { output, "grad.w", "grad.x" }));
        var y = OrtHarness.RunFloat(model, new Dictionary<string, (float[], long[])> { ["x"] = (new float[96], XShape) }, output)[output];
        var r = OrtHarness.RunFloat(vjp, new Dictionary<string, (float[], long[])>
        {
            ["x"] = (GradientHarness.Normal(new Random(2), 96, 1f, 0f), XShape),
            ["cotangent"] = (GradientHarness.Normal(new Random(3), y.Length, 1f, 0f), [2, y.Length / 2]),
        }, "grad.w");
        Assert.That(r["grad.w"].Max(MathF.Abs), Is.GreaterThan(0f));
    }

    [Test]
    public void Convert_SpatialBatchNormalizationOff_RefusedNamingNodeAndOp()
    {
        var b = new GraphBuilder("g");
        b.Initializer("s", [1f, 1f, 1f], 3);
        string x = b.Input("x", TensorData.Float, -1, 3, 2, 2);
        b.Node("BatchNormalization", [x, "s", "s", "s", "s"], "y", Attr.Int("spatial", 0));
        b.Output("y", TensorData.Float);
        var e = Assert.Throws<UnsupportedOperatorException>(() => OpsetAdapter.Convert(b.Build(opset: 7)));
        Assert.That(e!.OpType, Is.EqualTo("BatchNormalization"));
        Assert.That(e.Message, Does.Contain("n_y").And.Contain("opset 7").And.Contain("spatial"));
    }

    [Test]
    public void Convert_OpNewerThanTarget_RefusedNamingNodeAndOp()
    {
        var b = new GraphBuilder("g");
        b.Initializer("s", [1f, 1f, 1f], 3);
        string x = b.Input("x", TensorData.Float, -1, 3);
        b.Node("RMSNormalization", [x, "s"], "y");
        b.Output("y", TensorData.Float);
        var e = Assert.Throws<UnsupportedOperatorException>(() => VjpBuilder.Build(b.Build(opset: 23), new VjpOptions { Parameters = ["s"] }));
        Assert.That(e!.OpType, Is.EqualTo("RMSNormalization"));
        Assert.That(e.Message, Does.Contain("n_y").And.Contain("opset 23"));
    }

    [TestCase(6)]
    [TestCase(27)]
    public void Convert_OpsetOutOfRange_ThrowsNamingIt(int opset)
    {
        var b = new GraphBuilder("g");
        b.Input("x", TensorData.Float, -1, 3);
        b.Node("Relu", ["x"], "y");
        b.Output("y", TensorData.Float);
        var e = Assert.Throws<OnnxGraphException>(() => OpsetAdapter.Convert(b.Build(opset: opset)));
        Assert.That(e!.Message, Does.Contain($"opset {opset}").And.Contain("7 to 26"));
    }

    [Test]
    public void Convert_OpsetInRange_ReturnsTheSameModel()
    {
        var model = NewOpsetGraph(20);
        Assert.That(OpsetAdapter.Convert(model), Is.SameAs(model));
    }
}
