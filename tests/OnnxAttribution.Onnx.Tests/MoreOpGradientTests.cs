using static OnnxAttribution.Onnx.Tests.OpGradientTests;

namespace OnnxAttribution.Onnx.Tests;

/// <summary>
/// The rules for the ops PyTorch's exporter writes for diffusion U-Nets and transformers (normalisations, Gelu, Split,
/// Gather, ConvTranspose, Einsum, activations, reductions), and attribute variants, against central finite differences.
/// </summary>
[TestFixture]
public sealed class MoreOpGradientTests
{
    private static readonly long[] Image = [GradientHarness.Batch, 3, 4, 4];
    private static readonly long[] Tokens = [GradientHarness.Batch, 3, 5];

    public static IEnumerable<GradientCase> Cases()
    {
        (string, long[], float)[] none = [];
        (string, long[], float)[] cparam = [("p", [3, 1, 1], 0.2f)];
        string Scaled(GraphBuilder b, string x) => Op(b, "Mul", [x, "p"]);

        // Activations, each after a per-channel scale so the scale's per-example gradient is checked too.
        yield return new("Erf", Image, (b, x) => Op(b, "Erf", [Scaled(b, x)]), cparam, Float32: true);
        yield return new("Gelu_exact_opset20", Image, (b, x) => Op(b, "Gelu", [Scaled(b, x)]), cparam, Opset: 20, Float32: true);
        yield return new("Gelu_tanh_opset20", Image, (b, x) => Op(b, "Gelu", [Scaled(b, x)], Attr.String("approximate", "tanh")), cparam, Opset: 20);
        yield return new("Elu_alpha", Image, (b, x) => Op(b, "Elu", [Scaled(b, x)], Attr.Float("alpha", 0.7f)), cparam);
        yield return new("Selu", Image, (b, x) => Op(b, "Selu", [Scaled(b, x)]), cparam);
        yield return new("Celu_alpha", Image, (b, x) => Op(b, "Celu", [Scaled(b, x)], Attr.Float("alpha", 1.5f)), cparam, Float32: true);
        yield return new("HardSigmoid", Image, (b, x) => Op(b, "HardSigmoid", [Scaled(b, x)], Attr.Float("alpha", 0.3f)), cparam);
        yield return new("HardSwish", Image, (b, x) => Op(b, "HardSwish", [Op(b, "Mul", [x, b.Scalar("three", 3f)])]), none);
        yield return new("Mish", Image, (b, x) => Op(b, "Mish", [Scaled(b, x)]), cparam);
        yield return new("Softsign", Image, (b, x) => Op(b, "Softsign", [Scaled(b, x)]), cparam);
        yield return new("Clip_min_max", Image, (b, x) => Op(b, "Clip", [Scaled(b, x), b.Scalar("lo", -0.5f), b.Scalar("hi", 0.6f)]), cparam);
        yield return new("Clip_max_only", Image, (b, x) => Op(b, "Clip", [Scaled(b, x), "", b.Scalar("hi", 0.3f)]), cparam);
        yield return new("PRelu_slope_parameter", Image, (b, x) => Op(b, "PRelu", [x, "slope"]), [("slope", [3, 1, 1], 0.2f)]);

        // Variadic element-wise ops with broadcasting.
        yield return new("Sum_three_inputs", Image, (b, x) => Op(b, "Sum", [x, Scaled(b, x), "q"]), [("p", [3, 1, 1], 0.2f), ("q", [4], 0f)], Linear: true);
        yield return new("Mean_two_inputs", Image, (b, x) => Op(b, "Mean", [x, "q"]), [("q", [3, 1, 1], 0f)], Linear: true);
        yield return new("Max_input_and_parameter", Image, (b, x) => Op(b, "Max", [x, "q"]), [("q", [3, 4, 4], 0f)]);
        yield return new("Min_three_inputs", Image, (b, x) => Op(b, "Min", [x, Scaled(b, x), "q"]), [("p", [3, 1, 1], 0.2f), ("q", [3, 4, 4], 0f)]);

        // Moving and selecting elements.
        yield return new("Split_equal_GLU", [GradientHarness.Batch, 4, 3], (b, x) =>
        {
            var parts = b.NodeMulti("Split", [Scaled(b, x)], ["s0", "s1"], Attr.Int("axis", 1), Attr.Int("num_outputs", 2));
            return Op(b, "Mul", [parts[0], Op(b, "Sigmoid", [parts[1]])]);
        }, [("p", [4, 1], 0.2f)]);
        yield return new("Split_sizes_one_part_unused", [GradientHarness.Batch, 6, 2], (b, x) =>
            b.NodeMulti("Split", [x, Ints(b, 1, 3, 2)], ["a", "used", "c"], Attr.Int("axis", 1))[1], none, Linear: true);
        yield return new("Gather_embedding_rows_by_data", [GradientHarness.Batch, 5], (b, x) =>
        {
            var idx = Op(b, "Cast", [Op(b, "Greater", [x, b.Scalar("z", 0f)])], Attr.Int("to", TensorData.Int64));
            var rows = Op(b, "Gather", ["table", idx]);
            return Op(b, "Mul", [rows, Op(b, "Unsqueeze", [x, Ints(b, 2)])]);
        }, [("table", [2, 3], 0f)]);
        yield return new("Gather_positional_table_fixed_rows", Tokens, (b, x) => Op(b, "Add", [x, Op(b, "Gather", ["pos", Ints(b, 0, 2, 5)])]),
            [("pos", [6, 5], 0f)], Linear: true);
        yield return new("Gather_channels_of_activation", Image, (b, x) => Op(b, "Gather", [Scaled(b, x), Ints(b, 2, 0, 2)], Attr.Int("axis", 1)), cparam, Linear: true);
        yield return new("Tile_repeats", [GradientHarness.Batch, 3, 2], (b, x) => Op(b, "Mul", [Op(b, "Tile", [x, Ints(b, 1, 2, 3)]), "w"]), [("w", [6, 6], 0f)], Linear: true);
        yield return new("DepthToSpace_DCR", [GradientHarness.Batch, 8, 2, 2], (b, x) => Op(b, "DepthToSpace", [x], Attr.Int("blocksize", 2)), none, Linear: true);
        yield return new("DepthToSpace_CRD", [GradientHarness.Batch, 8, 2, 3], (b, x) => Op(b, "DepthToSpace", [x], Attr.Int("blocksize", 2), Attr.String("mode", "CRD")), none, Linear: true);
        yield return new("SpaceToDepth", [GradientHarness.Batch, 2, 4, 6], (b, x) => Op(b, "SpaceToDepth", [x], Attr.Int("blocksize", 2)), none, Linear: true);
        yield return new("CumSum_axis2", Image, (b, x) => Op(b, "CumSum", [x, Ints(b, 2)]), none, Linear: true);
        yield return new("CumSum_exclusive_reverse", Image, (b, x) => Op(b, "CumSum", [x, Ints(b, -1)], Attr.Int("exclusive", 1), Attr.Int("reverse", 1)), none, Linear: true);
        yield return new("Einsum_tokens_by_weight", Tokens, (b, x) => Op(b, "Einsum", [x, "w"], Attr.String("equation", "bij,jk->bik")), [("w", [5, 4], 0f)], Linear: true);
        yield return new("Einsum_attention_scores", [GradientHarness.Batch, 2, 3, 4], (b, x) =>
            Op(b, "Einsum", [x, Op(b, "Mul", [x, "p"])], Attr.String("equation", "bhid,bhjd->bhij")), [("p", [4], 0.3f)]);

        // Reductions.
        yield return new("ReduceMax_spatial", Image, (b, x) => Op(b, "ReduceMax", [Scaled(b, x), Ints(b, 2, 3)], Attr.Int("keepdims", 0)), cparam);
        yield return new("ReduceL2_channels", Image, (b, x) => Op(b, "ReduceL2", [Scaled(b, x), Ints(b, 1)]), cparam);
        yield return new("ReduceLogSumExp_last", Image, (b, x) => Op(b, "ReduceLogSumExp", [Scaled(b, x), Ints(b, -1)], Attr.Int("keepdims", 0)), cparam);
        yield return new("ReduceSumSquare_spatial", Image, (b, x) => Op(b, "ReduceSumSquare", [Scaled(b, x), Ints(b, 2, 3)]), cparam);
        yield return new("GlobalMaxPool", Image, (b, x) => Op(b, "GlobalMaxPool", [Scaled(b, x)]), cparam, Float32: true);

        // Layers.
        (string, long[], float)[] norm = [("scale", [3], 1f), ("shift", [3], 0f)];
        yield return new("InstanceNormalization", Image, (b, x) => Op(b, "InstanceNormalization", [x, "scale", "shift"], Attr.Float("epsilon", 1e-5f)), norm, Float32: true);
        yield return new("GroupNorm_as_InstanceNormalization_PyTorch_export", [GradientHarness.Batch, 4, 3, 3], (b, x) =>
        {
            var r = Op(b, "Reshape", [x, Ints(b, 0, 2, -1)]);
            var n = Op(b, "InstanceNormalization", [r, b.Constant("ones", [1f, 1f], 2), b.Constant("zeros", [0f, 0f], 2)]);
            return Op(b, "Add", [Op(b, "Mul", [Op(b, "Reshape", [n, Ints(b, 0, 4, 3, 3)]), "gamma"]), "beta"]);
        }, [("gamma", [4, 1, 1], 1f), ("beta", [4, 1, 1], 0f)], Float32: true);
        yield return new("LayerNormalization_last_axis", Tokens, (b, x) => Op(b, "LayerNormalization", [x, "scale", "shift"]), [("scale", [5], 1f), ("shift", [5], 0f)]);
        yield return new("LayerNormalization_two_axes", Tokens, (b, x) => Op(b, "LayerNormalization", [x, "scale"], Attr.Int("axis", 1)), [("scale", [3, 5], 1f)]);
        (string, long[], float)[] convT = [("w", [3, 2, 3, 3], 0f), ("bias", [2], 0f)];
        yield return new("ConvTranspose_stride2_output_padding", Image, (b, x) => Op(b, "ConvTranspose", [x, "w", "bias"], Attr.Ints("strides", 2, 2),
            Attr.Ints("pads", 1, 1, 1, 1), Attr.Ints("output_padding", 1, 1)), convT, Linear: true);
        yield return new("ConvTranspose_4x4_stride2_upsampling", Image, (b, x) => Op(b, "ConvTranspose", [x, "w"], Attr.Ints("strides", 2, 2),
            Attr.Ints("pads", 1, 1, 1, 1)), [("w", [3, 2, 4, 4], 0f)], Linear: true);
        yield return new("ConvTranspose_1d_grouped_weight", [GradientHarness.Batch, 4, 5], (b, x) => Op(b, "ConvTranspose", [x, "w", "bias"], Attr.Int("group", 2),
            Attr.Ints("strides", 2), Attr.Ints("pads", 1, 0)), [("w", [4, 3, 3], 0f), ("bias", [6], 0f)], Linear: true);
        yield return new("ConvTranspose_3d_weight", [GradientHarness.Batch, 2, 2, 3, 3], (b, x) => Op(b, "ConvTranspose", [x, "w"], Attr.Ints("strides", 2, 1, 2),
            Attr.Ints("pads", 0, 1, 1, 0, 1, 0)), [("w", [2, 3, 2, 3, 3], 0f)], Linear: true);
        yield return new("ConvTranspose_grouped_dilated_input_gradient", [GradientHarness.Batch, 4, 3, 3], (b, x) => Op(b, "ConvTranspose",
            [x, b.Constant("cw", Enumerable.Range(0, 36).Select(i => (i % 5) * 0.2f - 0.4f).ToArray(), 4, 1, 3, 3)], Attr.Int("group", 2), Attr.Ints("dilations", 2, 1),
            Attr.Ints("strides", 2, 2)), none, Linear: true);
        yield return new("MaxPool_1d_strided", [GradientHarness.Batch, 3, 9], (b, x) => Op(b, "MaxPool", [Scaled(b, x)], Attr.Ints("kernel_shape", 3), Attr.Ints("strides", 2),
            Attr.Ints("pads", 1, 1)), [("p", [3, 1], 0.2f)]);
        yield return new("Conv_auto_pad_SAME_UPPER_stride2", [GradientHarness.Batch, 3, 5, 5], (b, x) => Op(b, "Conv", [x, "w", "bias"], Attr.String("auto_pad", "SAME_UPPER"),
            Attr.Ints("strides", 2, 2)), [("w", [4, 3, 3, 3], 0f), ("bias", [4], 0f)], Linear: true);
        yield return new("Conv_auto_pad_SAME_LOWER_4x4", Image, (b, x) => Op(b, "Conv", [x, "w"], Attr.String("auto_pad", "SAME_LOWER")), [("w", [2, 3, 4, 4], 0f)], Linear: true);

        // Attribute variants.
        yield return new("Slice_negative_step_reverses", Image, (b, x) => Op(b, "Slice", [x, Ints(b, -1, 3), Ints(b, long.MinValue, 0), Ints(b, 3, 2), Ints(b, -1, -2)]), none, Linear: true);
        yield return new("Slice_step2_and_window", Image, (b, x) => Op(b, "Slice", [x, Ints(b, 0, 1), Ints(b, 4, 3), Ints(b, 3, 1), Ints(b, 2, 1)]), none, Linear: true);
        yield return new("Pad_reflect", Image, (b, x) => Op(b, "Pad", [x, Ints(b, 0, 0, 2, 1, 0, 0, 1, 3)], Attr.String("mode", "reflect")), none, Linear: true);
        yield return new("Pad_edge_axes_input", Image, (b, x) => Op(b, "Pad", [x, Ints(b, 1, 2, 3, 0), "", Ints(b, 2, -1)], Attr.String("mode", "edge")), none, Linear: true);
        yield return new("Pad_constant_axes_input", Image, (b, x) => Op(b, "Pad", [x, Ints(b, 1, 2), b.Scalar("v", 0.5f), Ints(b, 3)]), none, Linear: true);
        yield return new("Pad_wrap_opset19", Image, (b, x) => Op(b, "Pad", [x, Ints(b, 0, 0, 1, 2, 0, 0, 2, 1)], Attr.String("mode", "wrap")), none, Linear: true, Opset: 19);
        yield return new("AveragePool_count_include_pad0", [GradientHarness.Batch, 2, 6, 6], (b, x) => Op(b, "AveragePool", [x], Attr.Ints("kernel_shape", 3, 3), Attr.Ints("strides", 2, 2),
            Attr.Ints("pads", 1, 1, 1, 1)), none, Linear: true);
        yield return new("AveragePool_ceil_mode", [GradientHarness.Batch, 2, 5, 6], (b, x) => Op(b, "AveragePool", [x], Attr.Ints("kernel_shape", 2, 2), Attr.Ints("strides", 2, 2),
            Attr.Int("ceil_mode", 1)), none, Linear: true);
        yield return new("AveragePool_ceil_mode_padded_include_pad", [GradientHarness.Batch, 2, 6, 5], (b, x) => Op(b, "AveragePool", [x], Attr.Ints("kernel_shape", 3, 3), Attr.Ints("strides", 2, 2),
            Attr.Ints("pads", 1, 0, 1, 1), Attr.Int("ceil_mode", 1), Attr.Int("count_include_pad", 1)), none, Linear: true);
        yield return new("AveragePool_3d_ceil_mode", [GradientHarness.Batch, 2, 3, 4, 5], (b, x) => Op(b, "AveragePool", [x], Attr.Ints("kernel_shape", 2, 2, 2), Attr.Ints("strides", 2, 2, 2),
            Attr.Int("ceil_mode", 1)), none, Linear: true);
        yield return new("AveragePool_1d_padded", [GradientHarness.Batch, 2, 7], (b, x) => Op(b, "AveragePool", [x], Attr.Ints("kernel_shape", 3), Attr.Ints("strides", 2), Attr.Ints("pads", 1, 1)),
            none, Linear: true);
        yield return new("Gemm_transA", [GradientHarness.Batch, 5], (b, x) => Op(b, "Gemm", [Op(b, "Transpose", [x]), "w", "bias"], Attr.Int("transA", 1)),
            [("w", [5, 3], 0f), ("bias", [3], 0f)], Linear: true);
        yield return new("MatMul_batched_weight_per_head", [GradientHarness.Batch, 2, 3, 4], (b, x) => Op(b, "MatMul", [x, "w"]), [("w", [2, 4, 5], 0f)], Linear: true);
        yield return new("MatMul_rank4_input_2d_weight", [GradientHarness.Batch, 2, 3, 4], (b, x) => Op(b, "MatMul", [x, "w"]), [("w", [4, 5], 0f)], Linear: true);
        yield return new("Resize_linear_half_pixel_x2", Image, (b, x) => Op(b, "Resize", [x, "", b.Constant("s", [1f, 1f, 2f, 2f], 4)], Attr.String("mode", "linear")), none, Linear: true);
        yield return new("Resize_linear_align_corners_sizes", Image, (b, x) => Op(b, "Resize", [x, "", "", Ints(b, GradientHarness.Batch, 3, 7, 5)],
            Attr.String("mode", "linear"), Attr.String("coordinate_transformation_mode", "align_corners")), none, Linear: true);
        yield return new("Resize_linear_downscale_asymmetric", [GradientHarness.Batch, 2, 6, 6], (b, x) => Op(b, "Resize", [x, "", b.Constant("s", [1f, 1f, 0.5f, 0.75f], 4)],
            Attr.String("mode", "linear"), Attr.String("coordinate_transformation_mode", "asymmetric")), none, Linear: true);
        yield return new("Resize_nearest_scale_1_5", Image, (b, x) => Op(b, "Resize", [x, "", b.Constant("s", [1f, 1f, 1.5f, 1.5f], 4)], Attr.String("mode", "nearest")), none, Linear: true);

        yield return new("Conv_1d_stride2_padded", [GradientHarness.Batch, 3, 9], (b, x) => Op(b, "Conv", [x, "w", "bias"], Attr.Ints("strides", 2), Attr.Ints("pads", 1, 2)),
            [("w", [4, 3, 3], 0f), ("bias", [4], 0f)], Linear: true);
        yield return new("Conv_1d_stride1_dilated", [GradientHarness.Batch, 2, 7], (b, x) => Op(b, "Conv", [x, "w"], Attr.Ints("dilations", 2), Attr.Ints("pads", 2, 2)),
            [("w", [3, 2, 3], 0f)], Linear: true);
        yield return new("Conv_3d_stride1_padded", [GradientHarness.Batch, 2, 3, 4, 4], (b, x) => Op(b, "Conv", [x, "w", "bias"], Attr.Ints("pads", 1, 1, 1, 1, 1, 1)),
            [("w", [3, 2, 3, 3, 3], 0f), ("bias", [3], 0f)], Linear: true);
        yield return new("Conv_3d_stride2", [GradientHarness.Batch, 2, 4, 5, 5], (b, x) => Op(b, "Conv", [x, "w"], Attr.Ints("strides", 2, 2, 2), Attr.Ints("pads", 0, 1, 1, 1, 1, 0)),
            [("w", [2, 2, 2, 3, 3], 0f)], Linear: true);
        yield return new("Conv_grouped_weight_per_example", [GradientHarness.Batch, 4, 5, 5], (b, x) => Op(b, "Conv", [x, "w", "bias"], Attr.Int("group", 2), Attr.Ints("pads", 1, 1, 1, 1)),
            [("w", [6, 2, 3, 3], 0f), ("bias", [6], 0f)], Linear: true);
        yield return new("Conv_depthwise_weight_per_example", [GradientHarness.Batch, 3, 5, 5], (b, x) => Op(b, "Conv", [x, "w"], Attr.Int("group", 3), Attr.Ints("strides", 2, 2)),
            [("w", [3, 1, 3, 3], 0f)], Linear: true);

        // Parameters reached through views (PyTorch's Linear without bias: MatMul by the transposed weight).
        yield return new("MatMul_by_Transpose_of_weight", Tokens, (b, x) => Op(b, "MatMul", [x, Op(b, "Transpose", ["w"], Attr.Ints("perm", 1, 0))]), [("w", [4, 5], 0f)], Linear: true);
        yield return new("Conv_weight_through_Identity_Cast_Reshape", Image, (b, x) =>
        {
            var w = Op(b, "Reshape", [Op(b, "Cast", [Op(b, "Identity", ["w"])], Attr.Int("to", TensorData.Float)), Ints(b, 2, 3, 3, 3)]);
            return Op(b, "Conv", [x, w], Attr.Ints("pads", 1, 1, 1, 1));
        }, [("w", [2, 27], 0f)], Linear: true);

        // Older opsets, converted before differentiation (MaxPool at 13 scatters without ScatterElements' reduction).
        yield return new("MaxPool_overlapping_opset13", Image, (b, x) => Op(b, "MaxPool", [Scaled(b, x)], Attr.Ints("kernel_shape", 3, 3), Attr.Ints("pads", 1, 1, 1, 1)), cparam, Opset: 13);
        yield return new("Softmax_axis1_flattening_opset11", Image, (b, x) => Op(b, "Softmax", [Scaled(b, x)], Attr.Int("axis", 1)), cparam, Opset: 11);
        yield return new("Unsqueeze_ReduceSum_attributes_opset9", Tokens, (b, x) =>
            Op(b, "ReduceSum", [Op(b, "Mul", [Op(b, "Unsqueeze", [x], Attr.Ints("axes", 1)), "w"])], Attr.Ints("axes", 2)), [("w", [2, 3, 5], 0f)], Linear: true, Opset: 9);
    }

    [TestCaseSource(nameof(Cases))]
    public void Vjp_MatchesFiniteDifferences(GradientCase c)
    {
        double error = GradientHarness.MaxRelativeError(c);
        Assert.That(error, Is.LessThan(c.Tolerance), $"{c.Name}: worst relative error {error:E2}");
    }
}
