namespace OnnxAttribution.Onnx.Tests;

/// <summary>Every gradient rule against central finite differences (see <see cref="GradientHarness"/>).</summary>
[TestFixture]
public sealed class OpGradientTests
{
    private static readonly long[] Image = [GradientHarness.Batch, 3, 4, 4];
    private static readonly long[] Image6 = [GradientHarness.Batch, 2, 6, 6];
    private static readonly long[] Vector = [GradientHarness.Batch, 5];

    internal static string Op(GraphBuilder b, string op, string[] inputs, params Proto.AttributeProto[] a) => b.Node(op, inputs, null, a);

    internal static string Ints(GraphBuilder b, params long[] v) => b.ConstantInt64("k", v);

    public static IEnumerable<GradientCase> Cases()
    {
        (string, long[], float)[] none = [];
        (string, long[], float)[] cparam = [("p", [3, 1, 1], 0.2f)];
        yield return new("Add_broadcast_parameter", Image, (b, x) => Op(b, "Add", [x, "p"]), cparam);
        yield return new("Sub_parameter_minus_input", Image, (b, x) => Op(b, "Sub", ["p", x]), [("p", [4], 0f)]);
        yield return new("Mul_broadcast_parameter", Image, (b, x) => Op(b, "Mul", [x, "p"]), cparam);
        yield return new("Mul_input_with_itself", Image, (b, x) => Op(b, "Mul", [x, x]), none);
        yield return new("Div_by_parameter", Image, (b, x) => Op(b, "Div", [x, "p"]), [("p", [3, 1, 1], 3f)]);
        yield return new("Div_parameter_by_input", Image, (b, x) => Op(b, "Div", ["p", x]), [("p", [1, 4], 0f)], PositiveX: true);
        yield return new("Pow_constant_exponent", Image, (b, x) => Op(b, "Pow", [x, b.Scalar("e", 2.5f)]), none, PositiveX: true);
        foreach (var op in new[] { "Neg", "Identity", "Sigmoid", "Tanh", "Relu", "Exp", "Sin", "Cos", "Abs", "Softplus" })
        {
            yield return new($"{op}_elementwise", Image, (b, x) => Op(b, op, [Op(b, "Mul", [x, "p"])]), cparam);
        }
        foreach (var op in new[] { "Log", "Sqrt", "Reciprocal" })
        {
            yield return new($"{op}_positive", Image, (b, x) => Op(b, op, [x]), none, PositiveX: true);
        }
        yield return new("Cast_to_float_and_Dropout_inference", Image, (b, x) => Op(b, "Dropout", [Op(b, "Cast", [Op(b, "Mul", [x, "p"])], Attr.Int("to", TensorData.Float))]), cparam, Linear: true);
        yield return new("LeakyRelu_alpha", Image, (b, x) => Op(b, "LeakyRelu", [x], Attr.Float("alpha", 0.2f)), none);
        yield return new("Softmax_axis1", Image, (b, x) => Op(b, "Softmax", [Op(b, "Mul", [x, "p"])], Attr.Int("axis", 1)), cparam);
        yield return new("LogSoftmax_last_axis", Vector, (b, x) => Op(b, "LogSoftmax", [x], Attr.Int("axis", -1)), none);
        yield return new("Reshape_and_square", Image, (b, x) => Op(b, "Mul",
            [Op(b, "Reshape", [x, Ints(b, 0, 6, -1)]), b.Constant("w", Enumerable.Range(0, 48).Select(i => i * 0.1f).ToArray(), 6, 8)]), none, Linear: true);
        yield return new("Flatten_axis1", Image, (b, x) => Op(b, "Flatten", [x], Attr.Int("axis", 1)), none, Linear: true);
        yield return new("Unsqueeze_then_Squeeze", Vector, (b, x) => Op(b, "Squeeze", [Op(b, "Mul", [Op(b, "Unsqueeze", [x, Ints(b, 2)]), "p"]), Ints(b, 2)]), [("p", [5, 1], 0f)], Linear: true);
        yield return new("Transpose_perm", Image, (b, x) => Op(b, "Mul", [Op(b, "Transpose", [x], Attr.Ints("perm", 0, 2, 3, 1)), "p"]), [("p", [3], 0f)], Linear: true);
        yield return new("Concat_channels", Image, (b, x) => Op(b, "Concat", [x, Op(b, "Mul", [x, "p"])], Attr.Int("axis", 1)), cparam, Linear: true);
        yield return new("Slice_window", Image, (b, x) => Op(b, "Slice", [x, Ints(b, 1, 0), Ints(b, 3, -1), Ints(b, 2, 3)]), none, Linear: true);
        yield return new("Pad_constant", Image, (b, x) => Op(b, "Pad", [x, Ints(b, 0, 0, 1, 2, 0, 1, 0, 1)]), none, Linear: true);
        yield return new("Expand_broadcast", [GradientHarness.Batch, 3, 1, 1], (b, x) => Op(b, "Expand", [x, Ints(b, 1, 1, 2, 4)]), none, Linear: true);
        yield return new("Where_mask", Image, (b, x) => Op(b, "Where", [Op(b, "Greater", [x, b.Scalar("z", 0f)]), Op(b, "Mul", [x, "p"]), x]), cparam);
        yield return new("ReduceSum_keepdims", Image, (b, x) => Op(b, "ReduceSum", [x, Ints(b, 2, 3)], Attr.Int("keepdims", 1)), none, Linear: true);
        yield return new("ReduceMean_dropdims", Image, (b, x) => Op(b, "ReduceMean", [Op(b, "Mul", [x, x]), Ints(b, 1)], Attr.Int("keepdims", 0)), none);
        yield return new("GlobalAveragePool", Image, (b, x) => Op(b, "GlobalAveragePool", [x]), none, Linear: true);
        yield return new("MaxPool_2x2", Image, (b, x) => Op(b, "MaxPool", [x], Attr.Ints("kernel_shape", 2, 2), Attr.Ints("strides", 2, 2)), none);
        yield return new("MaxPool_3x3_padded", Image, (b, x) => Op(b, "MaxPool", [x], Attr.Ints("kernel_shape", 3, 3), Attr.Ints("pads", 1, 1, 1, 1)), none);
        yield return new("AveragePool_2x2", Image, (b, x) => Op(b, "AveragePool", [x], Attr.Ints("kernel_shape", 2, 2), Attr.Ints("strides", 2, 2)), none, Linear: true);
        yield return new("AveragePool_3x3_count_include_pad", Image6, (b, x) => Op(b, "AveragePool", [x], Attr.Ints("kernel_shape", 3, 3),
            Attr.Ints("strides", 2, 2), Attr.Ints("pads", 1, 1, 1, 1), Attr.Int("count_include_pad", 1)), none, Linear: true);
        yield return new("Resize_nearest_asymmetric_x2", Image, (b, x) => Op(b, "Resize", [x, "", b.Constant("s", [1f, 1f, 2f, 2f], 4)],
            Attr.String("mode", "nearest"), Attr.String("coordinate_transformation_mode", "asymmetric"), Attr.String("nearest_mode", "floor")),
            none, Linear: true);
        yield return new("Resize_nearest_half_pixel_x2", Image, (b, x) => Op(b, "Resize", [x, "", b.Constant("s", [1f, 1f, 2f, 2f], 4)], Attr.String("mode", "nearest")), none, Linear: true);
        (string, long[], float)[] conv = [("w", [4, 3, 3, 3], 0f), ("bias", [4], 0f)];
        yield return new("Conv_3x3_pad1", Image, (b, x) => Op(b, "Conv", [x, "w", "bias"], Attr.Ints("kernel_shape", 3, 3), Attr.Ints("pads", 1, 1, 1, 1)), conv, Linear: true);
        yield return new("Conv_3x3_stride2", Image6[..1].Concat(new long[] { 3, 7, 7 }).ToArray(),
            (b, x) => Op(b, "Conv", [x, "w", "bias"], Attr.Ints("kernel_shape", 3, 3), Attr.Ints("strides", 2, 2), Attr.Ints("pads", 1, 1, 1, 1)),
            conv, Linear: true);
        yield return new("Conv_3x3_dilation2_asymmetric_pads", [GradientHarness.Batch, 3, 7, 6],
            (b, x) => Op(b, "Conv", [x, "w"], Attr.Ints("dilations", 2, 2), Attr.Ints("pads", 2, 1, 1, 2)), [("w", [4, 3, 3, 3], 0f)], Linear: true);
        yield return new("Conv_1x1", Image, (b, x) => Op(b, "Conv", [x, "w"]), [("w", [2, 3, 1, 1], 0f)], Linear: true);
        yield return new("Conv_grouped_input_gradient", [GradientHarness.Batch, 4, 5, 5],
            (b, x) => Op(b, "Conv", [x, b.Constant("gw", Enumerable.Range(0, 72).Select(i => (i % 7) * 0.1f - 0.3f).ToArray(), 4, 2, 3, 3)],
                Attr.Int("group", 2)),
            none, Linear: true);
        yield return new("Gemm_transB_bias", Vector, (b, x) => Op(b, "Gemm", [x, "w", "bias"], Attr.Int("transB", 1)), [("w", [3, 5], 0f), ("bias", [3], 0f)], Linear: true);
        yield return new("Gemm_alpha_beta", Vector, (b, x) => Op(b, "Gemm", [x, "w", "bias"], Attr.Float("alpha", 0.5f), Attr.Float("beta", 2f)),
            [("w", [5, 3], 0f), ("bias", [1, 3], 0f)], Linear: true);
        yield return new("MatMul_2d", Vector, (b, x) => Op(b, "MatMul", [x, "w"]), [("w", [5, 4], 0f)], Linear: true);
        yield return new("MatMul_3d_tokens", [GradientHarness.Batch, 3, 5], (b, x) => Op(b, "MatMul", [x, "w"]), [("w", [5, 4], 0f)], Linear: true);
        yield return new("BatchNormalization_inference", Image, (b, x) => Op(b, "BatchNormalization",
            [x, "scale", "shift", b.Constant("mean", [0.1f, -0.2f, 0.3f], 3), b.Constant("var", [0.5f, 1.5f, 2f], 3)]),
            [("scale", [3], 1f), ("shift", [3], 0f)], Linear: true);
        yield return new("GroupNormalization_opset21", [GradientHarness.Batch, 4, 3, 3],
            (b, x) => Op(b, "GroupNormalization", [x, "scale", "shift"], Attr.Int("num_groups", 2), Attr.Float("epsilon", 1e-5f)),
            [("scale", [4], 1f), ("shift", [4], 0f)], Opset: 21);
        yield return new("GroupNorm_decomposition_with_SiLU", [GradientHarness.Batch, 4, 3, 3], (b, x) =>
        {
            var r = Op(b, "Reshape", [x, Ints(b, 0, 2, -1)]);
            var m = Op(b, "ReduceMean", [r, Ints(b, 2)]);
            var d = Op(b, "Sub", [r, m]);
            var v = Op(b, "ReduceMean", [Op(b, "Mul", [d, d]), Ints(b, 2)]);
            var n = Op(b, "Div", [d, Op(b, "Sqrt", [Op(b, "Add", [v, b.Scalar("eps", 1e-5f)])])]);
            var y = Op(b, "Add", [Op(b, "Mul", [Op(b, "Reshape", [n, Ints(b, 0, 4, 3, 3)]), "gamma"]), "beta"]);
            return Op(b, "Mul", [y, Op(b, "Sigmoid", [y])]);
        }, [("gamma", [4, 1, 1], 1f), ("beta", [4, 1, 1], 0f)]);
    }

    [TestCaseSource(nameof(Cases))]
    public void Vjp_MatchesFiniteDifferences(GradientCase c)
    {
        double error = GradientHarness.MaxRelativeError(c);
        Assert.That(error, Is.LessThan(c.Tolerance), $"{c.Name}: worst relative error {error:E2}");
    }
}
