using OnnxAttribution.Onnx.Differentiation;
using static OnnxAttribution.Onnx.Tests.OpGradientTests;

namespace OnnxAttribution.Onnx.Tests;

/// <summary>
/// The shape arithmetic PyTorch's exporter writes around reshapes, pads, expands and resizes (Shape → Gather → Unsqueeze →
/// Concat, ConstantOfShape, Range, Where/Equal guards, int64 arithmetic) with a symbolic batch: the gradient graph is
/// derived through it and checked against finite differences for a batch of two. Before the values of these integer
/// tensors were tracked, every case here was refused ("cannot be inferred statically").
/// </summary>
[TestFixture]
public sealed class ShapeArithmeticTests
{
    private static readonly long[] Image = [GradientHarness.Batch, 3, 4, 4];

    private static string Index(GraphBuilder b, long i) => b.ScalarInt64("i", i);

    /// <summary>Unsqueeze(Gather(Shape(x), i)): one dimension of x as a 1-element vector, as the exporter writes x.shape[i].</summary>
    private static string Dim(GraphBuilder b, string x, long i) =>
        Op(b, "Unsqueeze", [Op(b, "Gather", [Op(b, "Shape", [x]), Index(b, i)], Attr.Int("axis", 0)), Ints(b, 0)]);

    public static IEnumerable<GradientCase> Cases()
    {
        (string, long[], float)[] cparam = [("p", [3, 1, 1], 0.2f)];
        string Scaled(GraphBuilder b, string x) => Op(b, "Mul", [x, "p"]);

        // h.reshape(b, c, h*w) with b, c, h, w read from the tensor's own shape, then softmax over the positions.
        yield return new("Reshape_batch_read_from_Shape", Image, (b, x) =>
        {
            var h = Scaled(b, x);
            var hw = Op(b, "Mul", [Dim(b, h, 2), Dim(b, h, 3)]);
            var target = Op(b, "Concat", [Dim(b, h, 0), Dim(b, h, 1), hw], Attr.Int("axis", 0));
            return Op(b, "Softmax", [Op(b, "Reshape", [h, target])], Attr.Int("axis", 2));
        }, cparam);

        // F.pad(x, (0, 1, 0, 1)) as PyTorch 1.13 exports it: the pads built from ConstantOfShape, reversed and transposed.
        yield return new("Pad_with_pads_computed_by_ConstantOfShape", Image, (b, x) =>
        {
            var zeros = Op(b, "ConstantOfShape", [Ints(b, 4)], Attr.Tensor("value", TensorData.FromInt64s("v", [0], 1)));
            var all = Op(b, "Concat", [Ints(b, 0, 1, 0, 1), zeros], Attr.Int("axis", 0));
            var pairs = Op(b, "Reshape", [all, Ints(b, -1, 2)]);
            var reversed = Op(b, "Slice", [pairs, Ints(b, -1), Ints(b, -9_223_372_036_854_775_807), Ints(b, 0), Ints(b, -1)]);
            var pads = Op(b, "Cast", [Op(b, "Reshape", [Op(b, "Transpose", [reversed], Attr.Ints("perm", 1, 0)), Ints(b, -1)])], Attr.Int("to", TensorData.Int64));
            var padded = Op(b, "Pad", [Scaled(b, x), pads, b.Scalar("zero", 0f)], Attr.String("mode", "constant"));
            return Op(b, "Conv", [padded, "w"], Attr.Ints("strides", 2, 2), Attr.Ints("kernel_shape", 3, 3));
        }, [("p", [3, 1, 1], 0.2f), ("w", [2, 3, 3, 3], 0f)], Linear: true);

        // p.expand(x.shape) with the exporter's guard: Where(Equal(shape, -1), 1, shape).
        yield return new("Expand_to_shape_with_Where_Equal_guard", Image, (b, x) =>
        {
            var shape = Op(b, "Shape", [x]);
            var guarded = Op(b, "Where", [Op(b, "Equal", [shape, Ints(b, -1)]), Op(b, "ConstantOfShape", [Op(b, "Shape", [shape])],
                Attr.Tensor("value", TensorData.FromInt64s("one", [1], 1))), shape]);
            return Op(b, "Mul", [x, Op(b, "Expand", ["p", guarded])]);
        }, cparam);

        // Positions from Range over a dimension read from the shape, scaled and added (a position signal).
        yield return new("Range_over_a_dimension", Image, (b, x) =>
        {
            var width = Op(b, "Gather", [Op(b, "Shape", [x]), Index(b, 3)], Attr.Int("axis", 0));
            var positions = Op(b, "Cast", [Op(b, "Range", [Index(b, 0), width, Index(b, 1)])], Attr.Int("to", TensorData.Float));
            return Op(b, "Mul", [Op(b, "Add", [Scaled(b, x), positions]), Scaled(b, x)]);
        }, cparam);

        // F.interpolate(size=(2h, 2w)) with the sizes computed: Concat(Shape(x)[:2], Shape(x)[2:] * 2).
        yield return new("Resize_to_sizes_computed_from_the_shape", Image, (b, x) =>
        {
            var h = Scaled(b, x);
            var shape = Op(b, "Shape", [h]);
            var head = Op(b, "Slice", [shape, Ints(b, 0), Ints(b, 2)]);
            var tail = Op(b, "Mul", [Op(b, "Slice", [shape, Ints(b, 2), Ints(b, 4)]), Ints(b, 2)]);
            var sizes = Op(b, "Concat", [head, tail], Attr.Int("axis", 0));
            var up = Op(b, "Resize", [h, "", "", sizes], Attr.String("mode", "nearest"), Attr.String("coordinate_transformation_mode", "asymmetric"),
                Attr.String("nearest_mode", "floor"));
            return Op(b, "Conv", [up, "w"], Attr.Ints("kernel_shape", 3, 3), Attr.Ints("pads", 1, 1, 1, 1));
        }, [("p", [3, 1, 1], 0.2f), ("w", [2, 3, 3, 3], 0f)], Linear: true);

        // Multi-head split as the exporter writes q.view(b, -1, heads, d): the head size from integer division of a dimension.
        yield return new("Heads_split_with_Div_of_a_dimension", [GradientHarness.Batch, 3, 4], (b, x) =>
        {
            var q = Op(b, "MatMul", [x, "wq"]);
            var d = Op(b, "Div", [Dim(b, q, 2), Ints(b, 2)]);
            var target = Op(b, "Concat", [Dim(b, q, 0), Ints(b, -1), Ints(b, 2), d], Attr.Int("axis", 0));
            var heads = Op(b, "Transpose", [Op(b, "Reshape", [q, target])], Attr.Ints("perm", 0, 2, 1, 3));
            var scores = Op(b, "Softmax", [Op(b, "MatMul", [heads, Op(b, "Transpose", [heads], Attr.Ints("perm", 0, 1, 3, 2))])], Attr.Int("axis", -1));
            return Op(b, "MatMul", [scores, heads]);
        }, [("wq", [4, 4], 0f)]);
    }

    [TestCaseSource(nameof(Cases))]
    public void Gradient_ThroughExporterShapeArithmetic_MatchesFiniteDifferences(GradientCase c)
    {
        double error = GradientHarness.MaxRelativeError(c);
        Assert.That(error, Is.LessThan(c.Tolerance), $"{c.Name}: max relative error {error:E2}");
    }

    [Test]
    public void Build_ReshapeFoldingBatchIntoAnotherAxis_IsRefusedNamingTheNode()
    {
        // x.reshape(b * 3, 16): a dimension that is a multiple of the batch cannot be kept per example.
        var b = new GraphBuilder("g");
        b.Initializer("p", new float[3], 3, 1, 1);
        b.Input("x", TensorData.Float, -1, 3, 4, 4);
        var h = Op(b, "Mul", ["x", "p"]);
        var rows = Op(b, "Mul", [Dim(b, h, 0), Ints(b, 3)]);
        var y = b.Node("Reshape", [h, Op(b, "Concat", [rows, Ints(b, 16)], Attr.Int("axis", 0))], "y");
        var z = b.Node("Softmax", [y], "z", Attr.Int("axis", 1));
        b.Output(z, TensorData.Float, -1, 16);
        var e = Assert.Throws<UnsupportedOperatorException>(() => VjpBuilder.Build(b.Build(), new VjpOptions { Parameters = ["p"] }));
        Assert.That(e!.Message, Does.Contain("Reshape").And.Contain("n_y").And.Contain("[3·batch, 16]").And.Contain("the batch stays its own axis"));
    }

    [Test]
    public void DefaultParameters_OneElementConvBias_IsAParameter()
    {
        // A one-channel output convolution: its bias has one element and is trained like any other.
        var b = new GraphBuilder("g");
        b.Initializer("conv_out.weight", new float[9], 1, 1, 3, 3);
        b.Initializer("conv_out.bias", [0.1f], 1);
        b.Input("x", TensorData.Float, -1, 1, 4, 4);
        var y = b.Node("Conv", ["x", "conv_out.weight", "conv_out.bias"], "y", Attr.Ints("pads", 1, 1, 1, 1));
        b.Output(y, TensorData.Float, -1, 1, 4, 4);
        Assert.That(VjpBuilder.DefaultParameters(b.Build()), Is.EqualTo(new[] { "conv_out.weight", "conv_out.bias" }));
    }

    [Test]
    public void DefaultParameters_RowFoldedOntoTheStepEmbedding_IsAParameterButTheFrequenciesAreNot()
    {
        // DiT's c = t_mlp(sinusoid(t)) + y_table[null]: the exporter folds the table row into a constant added after a learned layer.
        var b = new GraphBuilder("g");
        b.Initializer("freq", [1f, 2f, 3f, 4f], 1, 4);
        b.Initializer("t_fc.weight", new float[16], 4, 4);
        b.Initializer("folded_row", [0.1f, 0.2f, 0.3f, 0.4f], 1, 4);
        b.Input("x", TensorData.Float, -1, 4);
        b.Input("t", TensorData.Int64, -1);
        var t = b.Node("Unsqueeze", [b.Node("Cast", ["t"], null, Attr.Int("to", TensorData.Float)), b.ConstantInt64("ax", 1)]);
        var emb = b.Node("MatMul", [b.Node("Sin", [b.Node("Mul", [t, "freq"])]), "t_fc.weight"]);
        var c = b.Node("Add", [emb, "folded_row"]);
        var y = b.Node("Mul", ["x", c], "y");
        b.Output(y, TensorData.Float, -1, 4);
        Assert.That(VjpBuilder.DefaultParameters(b.Build()), Is.EqualTo(new[] { "t_fc.weight", "folded_row" }));
    }
}
