using OnnxAttribution.Runtime.Projection;
using static OnnxAttribution.Runtime.Tests.Projection.DenseProjectorTests;

namespace OnnxAttribution.Runtime.Tests.Projection;

public sealed class FactoredProjectorTests
{
    private static readonly ProjectionKind[] Kinds = [ProjectionKind.Rademacher, ProjectionKind.Gaussian];

    // Shapes like the U-Net's: a 3×3 conv from 32 channels (288 inputs) at 8×8 positions, a 1×1 conv, a linear layer.
    private static readonly (string Layer, int InDim, int OutDim)[] Layers = [("down.conv", 288, 64), ("skip", 17, 9), ("time.linear", 40, 33)];

    private static readonly int[] Positions = [64, 9, 1];

    [TestCaseSource(nameof(Kinds))]
    public void ProjectExample_Factors_EqualsProjectDenseOfSumOfOuterProducts(ProjectionKind kind)
    {
        const int kIn = 20, kOut = 12, batch = 3;
        var projector = new FactoredProjector(Layers, kIn, kOut, kind, 31);
        var (factors, gradients) = RandomFactors(new Random(8), batch);

        for (int e = 0; e < batch; e++)
        {
            var fromFactors = new float[projector.OutputDim];
            projector.ProjectExample(factors, e, fromFactors);
            var fromDense = new float[projector.OutputDim];
            projector.ProjectDense(gradients[e].Select(g => (ReadOnlyMemory<float>)g).ToArray(), fromDense);

            // Reference in float64 from the projector's own P_in, P_out; tolerance scaled by Σ|terms| per entry.
            var (expected, scale) = Reference(projector, factors, e);
            for (int i = 0; i < expected.Length; i++)
            {
                double tolerance = 1e-5 * scale[i] + 1e-12;
                Assert.That(fromFactors[i], Is.EqualTo(expected[i]).Within(tolerance), $"example {e}, factors, index {i}");
                Assert.That(fromDense[i], Is.EqualTo(expected[i]).Within(tolerance), $"example {e}, dense, index {i}");
            }
        }
    }

    [Test]
    public void ProjectBatch_AnyThreadCount_EqualsProjectExampleBitForBit()
    {
        const int batch = 5;
        var (factors, _) = RandomFactors(new Random(9), batch);
        var serial = new FactoredProjector(Layers, 16, 16, ProjectionKind.Gaussian, 4) { MaxDegreeOfParallelism = 1 };
        var parallel = new FactoredProjector(Layers, 16, 16, ProjectionKind.Gaussian, 4);
        var a = new float[batch * serial.OutputDim];
        var b = new float[batch * serial.OutputDim];
        serial.ProjectBatch(factors, batch, a);
        parallel.ProjectBatch(factors, batch, b);
        AssertBitIdentical(b, a, "threads");
        var one = new float[serial.OutputDim];
        serial.ProjectExample(factors, 4, one);
        AssertBitIdentical(one, a[(4 * serial.OutputDim)..], "example 4");
    }

    [Test]
    public void ProjectDense_ManyRandomGradients_PreservesSquaredNormOnAverage()
    {
        // E‖y‖² = ‖G‖²_F for the scaled Kronecker projection: average the ratio over 200 random G.
        var layers = new[] { ("l", 30, 20) };
        var random = new Random(10);
        double sum = 0;
        const int trials = 200;
        for (int t = 0; t < trials; t++)
        {
            var projector = new FactoredProjector(layers, 16, 16, ProjectionKind.Rademacher, (ulong)t);
            var g = RandomVector(random, 600);
            var y = new float[projector.OutputDim];
            projector.ProjectDense([g], y);
            sum += y.Sum(v => (double)v * v) / g.Sum(v => (double)v * v);
        }
        // Each ratio has a standard deviation of roughly √(2/256 + 2/256) ≈ 0.125; the mean of 200 about 0.009.
        Assert.That(sum / trials, Is.EqualTo(1.0).Within(0.05));
    }

    [Test]
    public void CopyProjections_Rademacher_EntriesArePlusMinusOneOverRootKAndDifferBetweenLayersAndSides()
    {
        var projector = new FactoredProjector([("a", 64, 64), ("b", 64, 64)], 32, 16, ProjectionKind.Rademacher, 2);
        var in0 = new float[64 * 32];
        var in1 = new float[64 * 32];
        var out0 = new float[64 * 16];
        projector.CopyInputProjection(0, in0);
        projector.CopyInputProjection(1, in1);
        projector.CopyOutputProjection(0, out0);
        Assert.That(in0.All(v => Math.Abs(v) == (float)(1 / Math.Sqrt(32))), Is.True);
        Assert.That(out0.All(v => Math.Abs(v) == 0.25f), Is.True);
        Assert.That(in0.Zip(in1).Count(t => t.First == t.Second), Is.InRange(800, 1250), "layers 0 and 1 agree on about half the signs");
        var in0Head = in0.Where((_, i) => i % 32 < 16).ToArray();
        Assert.That(in0Head.Zip(out0).Count(t => Math.Sign(t.First) == Math.Sign(t.Second)), Is.InRange(400, 625), "P_in and P_out differ");
    }

    [Test]
    public void Constructor_BadLayers_Throw()
    {
        Assert.Multiple(() =>
        {
            Assert.That(() => new FactoredProjector([], 4, 4, ProjectionKind.Gaussian, 1), Throws.ArgumentException);
            Assert.That(() => new FactoredProjector([("a", 3, 3), ("a", 3, 3)], 4, 4, ProjectionKind.Gaussian, 1), Throws.ArgumentException);
            Assert.That(() => new FactoredProjector([("a", 0, 3)], 4, 4, ProjectionKind.Gaussian, 1), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => new FactoredProjector([("a", 3, 3)], 0, 4, ProjectionKind.Gaussian, 1), Throws.InstanceOf<ArgumentOutOfRangeException>());
        });
    }

    [Test]
    public void ProjectExample_MismatchedFactors_Throw()
    {
        var projector = new FactoredProjector([("a", 3, 2)], 4, 4, ProjectionKind.Gaussian, 1);
        var good = new LayerFactors(new float[2 * 5 * 3], new float[2 * 5 * 2], 5);
        var bad = new LayerFactors(new float[2 * 5 * 3], new float[3 * 5 * 2], 5);
        var destination = new float[projector.OutputDim];
        Assert.Multiple(() =>
        {
            Assert.That(() => projector.ProjectExample([good], 1, destination), Throws.Nothing);
            Assert.That(() => projector.ProjectExample([good], 2, destination), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => projector.ProjectExample([bad], 0, destination), Throws.ArgumentException);
            Assert.That(() => projector.ProjectExample([good, good], 0, destination), Throws.ArgumentException);
            Assert.That(() => projector.ProjectExample([good], 0, new float[3]), Throws.ArgumentException);
        });
    }

    /// <summary>Random factors for a batch, and each example's explicit G_ℓ = Σₛ gₛ aₛᵀ ([outDim × inDim]).</summary>
    private static (LayerFactors[] Factors, float[][][] Gradients) RandomFactors(Random random, int batch)
    {
        var factors = new LayerFactors[Layers.Length];
        var gradients = new float[batch][][];
        for (int e = 0; e < batch; e++)
        {
            gradients[e] = new float[Layers.Length][];
        }
        for (int l = 0; l < Layers.Length; l++)
        {
            var (_, inDim, outDim) = Layers[l];
            int s = Positions[l];
            var a = RandomVector(random, batch * s * inDim);
            var g = RandomVector(random, batch * s * outDim);
            factors[l] = new LayerFactors(a, g, s);
            for (int e = 0; e < batch; e++)
            {
                var G = new double[outDim * inDim];
                for (int p = 0; p < s; p++)
                {
                    for (int o = 0; o < outDim; o++)
                    {
                        for (int i = 0; i < inDim; i++)
                        {
                            G[o * inDim + i] += (double)g[(e * s + p) * outDim + o] * a[(e * s + p) * inDim + i];
                        }
                    }
                }
                gradients[e][l] = G.Select(v => (float)v).ToArray();
            }
        }
        return (factors, gradients);
    }

    /// <summary>y = Σₛ (P_outᵀ gₛ) ⊗ (P_inᵀ aₛ) in float64, and Σ over every product of |terms| per entry.</summary>
    private static (double[] Value, double[] Scale) Reference(FactoredProjector projector, LayerFactors[] factors, int example)
    {
        int kIn = projector.InputProjectionDim, kOut = projector.OutputProjectionDim;
        var value = new double[projector.OutputDim];
        var scale = new double[projector.OutputDim];
        for (int l = 0; l < Layers.Length; l++)
        {
            var (_, inDim, outDim) = Layers[l];
            int s = factors[l].Positions;
            var pIn = new float[inDim * kIn];
            var pOut = new float[outDim * kOut];
            projector.CopyInputProjection(l, pIn);
            projector.CopyOutputProjection(l, pOut);
            var a = factors[l].Activations.Span.Slice(example * s * inDim, s * inDim).ToArray();
            var g = factors[l].OutputGradients.Span.Slice(example * s * outDim, s * outDim).ToArray();
            int offset = projector.LayerOffset(l);
            for (int p = 0; p < s; p++)
            {
                var ai = new double[kIn];
                var aiAbs = new double[kIn];
                for (int i = 0; i < kIn; i++)
                {
                    for (int c = 0; c < inDim; c++)
                    {
                        ai[i] += (double)pIn[c * kIn + i] * a[p * inDim + c];
                        aiAbs[i] += Math.Abs((double)pIn[c * kIn + i] * a[p * inDim + c]);
                    }
                }
                for (int o = 0; o < kOut; o++)
                {
                    double go = 0, goAbs = 0;
                    for (int r = 0; r < outDim; r++)
                    {
                        go += (double)pOut[r * kOut + o] * g[p * outDim + r];
                        goAbs += Math.Abs((double)pOut[r * kOut + o] * g[p * outDim + r]);
                    }
                    for (int i = 0; i < kIn; i++)
                    {
                        value[offset + o * kIn + i] += go * ai[i];
                        scale[offset + o * kIn + i] += goAbs * aiAbs[i];
                    }
                }
            }
        }
        return (value, scale);
    }
}
