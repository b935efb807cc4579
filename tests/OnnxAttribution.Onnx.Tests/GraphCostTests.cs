using static OnnxAttribution.Onnx.Tests.OpGradientTests;

namespace OnnxAttribution.Onnx.Tests;

/// <summary>The operation count of a graph, against counts done by hand.</summary>
[TestFixture]
public sealed class GraphCostTests
{
    [Test]
    public void Count_ConvGemmMatMulEinsum_TwiceTheirMultiplyAdds()
    {
        var b = new GraphBuilder("g");
        b.Initializer("w", new float[8 * 3 * 3 * 3], 8, 3, 3, 3);
        b.Initializer("fc", new float[8 * 16 * 5], 8 * 16, 5);
        b.Initializer("m", new float[5 * 7], 5, 7);
        b.Input("x", TensorData.Float, -1, 3, 4, 4);
        var h = Op(b, "Conv", ["x", "w"], Attr.Ints("pads", 1, 1, 1, 1));                       // [B, 8, 4, 4]: 8·16 outputs × 27 MACs
        var f = Op(b, "Gemm", [Op(b, "Flatten", [h]), "fc"]);                                    // [B, 5]: 5 outputs × 128 MACs
        var g = Op(b, "MatMul", [f, "m"]);                                                       // [B, 7]: 7 outputs × 5 MACs
        var e = b.Node("Einsum", [g, g], "y", Attr.String("equation", "bi,bj->bij"));           // [B, 7, 7]: 49 products
        b.Output(e, TensorData.Float, -1, 7, 7);

        var one = GraphCost.Count(b.Build());
        var four = GraphCost.Count(b.Build(), batch: 4);

        Assert.That(one.ByOp["Conv"], Is.EqualTo(2.0 * 8 * 16 * 27));
        Assert.That(one.ByOp["Gemm"], Is.EqualTo(2.0 * 5 * 128));
        Assert.That(one.ByOp["MatMul"], Is.EqualTo(2.0 * 7 * 5));
        Assert.That(one.ByOp["Einsum"], Is.EqualTo(2.0 * 49));
        Assert.That(one.MultiplyAddFlops, Is.EqualTo(2.0 * (8 * 16 * 27 + 5 * 128 + 7 * 5 + 49)));
        Assert.That(four.MultiplyAddFlops, Is.EqualTo(4 * one.MultiplyAddFlops), "the batch axis scales every count");
        Assert.That(one.Uncounted, Is.Empty);
        var toGemm = GraphCost.Count(b.Build(), outputs: [f]);
        Assert.That(toGemm.MultiplyAddFlops, Is.EqualTo(2.0 * (8 * 16 * 27 + 5 * 128)), "only the nodes the outputs need");
    }
}
