using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Influence;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;

namespace OnnxAttribution.Core.Tests.Attribution;

[TestFixture]
public sealed class KroneckerCurvatureTests : TempDirectoryTest
{
    private static double[] RandomSpd(int n, Random rng) =>
        TestMatrices.Compose(TestMatrices.RandomOrthogonal(n, rng), Enumerable.Range(0, n).Select(_ => Math.Exp(3 * (rng.NextDouble() - 0.5))).ToArray(), n);

    /// <summary>x = K⁻¹ v by Gaussian elimination with partial pivoting (K dense, n×n).</summary>
    private static double[] Solve(double[] k, double[] v, int n)
    {
        var m = (double[])k.Clone();
        var x = (double[])v.Clone();
        for (int c = 0; c < n; c++)
        {
            int p = Enumerable.Range(c, n - c).MaxBy(r => Math.Abs(m[r * n + c]));
            for (int j = 0; j < n; j++)
            {
                (m[c * n + j], m[p * n + j]) = (m[p * n + j], m[c * n + j]);
            }
            (x[c], x[p]) = (x[p], x[c]);
            for (int r = c + 1; r < n; r++)
            {
                double f = m[r * n + c] / m[c * n + c];
                for (int j = c; j < n; j++)
                {
                    m[r * n + j] -= f * m[c * n + j];
                }
                x[r] -= f * x[c];
            }
        }
        for (int r = n - 1; r >= 0; r--)
        {
            double s = x[r];
            for (int j = r + 1; j < n; j++)
            {
                s -= m[r * n + j] * x[j];
            }
            x[r] = s / m[r * n + r];
        }
        return x;
    }

    [TestCase(false)]
    [TestCase(true)]
    public void InverseProduct_SmallLayer_EqualsDenseSolveOfDampedKronecker(bool corrected)
    {
        const int inDim = 4, outDim = 3, size = inDim * outDim;
        var rng = new Random(corrected ? 2 : 1);
        var a = RandomSpd(inDim, rng);
        var b = RandomSpd(outDim, rng);
        var ea = SymmetricEigen.Decompose(a, inDim);
        var eb = SymmetricEigen.Decompose(b, outDim);
        var lambdaRefit = corrected ? Enumerable.Range(0, size).Select(_ => rng.NextDouble() + 0.1).ToArray() : null;
        var layer = new KroneckerLayer(new KroneckerLayerShape("l", inDim, outDim, 1), ea, eb, lambdaRefit);
        double damping = layer.Damping(0.1);

        // K on vec(V) (row-major, index o·in + i): K-FAC B ⊗ A; EK-FAC (Q_B ⊗ Q_A) diag(Λ) (Q_B ⊗ Q_A)ᵀ; plus λI.
        var k = new double[size * size];
        for (int r = 0; r < size; r++)
        {
            for (int c = 0; c < size; c++)
            {
                int o = r / inDim, i = r % inDim, o2 = c / inDim, i2 = c % inDim;
                double v;
                if (lambdaRefit is null)
                {
                    v = b[o * outDim + o2] * a[i * inDim + i2];
                }
                else
                {
                    v = 0;
                    for (int e = 0; e < size; e++)
                    {
                        int p = e / inDim, q = e % inDim;
                        v += eb.Vectors[o * outDim + p] * ea.Vectors[i * inDim + q] * lambdaRefit[e] * eb.Vectors[o2 * outDim + p] * ea.Vectors[i2 * inDim + q];
                    }
                }
                k[r * size + c] = v + (r == c ? damping : 0);
            }
        }
        var gradient = Enumerable.Range(0, size).Select(_ => TestRandom.Normal(rng)).ToArray();
        var expected = Solve(k, gradient, size);
        var actual = new double[size];
        layer.InverseProduct(gradient, 0.1, actual);
        double scale = expected.Max(Math.Abs);
        for (int e = 0; e < size; e++)
        {
            Assert.That(actual[e], Is.EqualTo(expected[e]).Within(1e-10 * scale), $"entry {e}");
        }
    }

    // A layer whose products go "gradient first" (S = 5, 6 → 4) and one that rotates its factors first (S = 1, 19 → 70,
    // more than one 64-row block, widths not multiples of 16).
    private static readonly KroneckerLayerShape[] Shapes = [new("conv", 6, 4, 5), new("linear", 19, 70, 1)];

    private static (LayerFactors[] Factors, float[][] A, float[][] G) RandomFactors(Random rng, int count)
    {
        var a = Shapes.Select(s => Enumerable.Range(0, count * s.Positions * s.InDim).Select(_ => (float)TestRandom.Normal(rng)).ToArray()).ToArray();
        var g = Shapes.Select(s => Enumerable.Range(0, count * s.Positions * s.OutDim).Select(_ => (float)TestRandom.Normal(rng)).ToArray()).ToArray();
        return (Shapes.Select((s, l) => new LayerFactors(a[l], g[l], s.Positions)).ToArray(), a, g);
    }

    [Test]
    public void FactorAccumulator_TwoPairs_InputFactorAveragesPositionsOutputFactorSumsThem()
    {
        const int count = 3, pairs = 2;
        var rng = new Random(5);
        var accumulator = new KroneckerFactorAccumulator(Shapes);
        var batches = Enumerable.Range(0, pairs).Select(_ => RandomFactors(rng, count)).ToArray();
        foreach (var batch in batches)
        {
            accumulator.Add(batch.Factors, count);
        }
        Assert.That(accumulator.Samples, Is.EqualTo(count * pairs));
        for (int l = 0; l < Shapes.Length; l++)
        {
            var (_, inDim, outDim, s) = Shapes[l];
            var (a, b) = accumulator.Factors(l);
            // A = Σ a aᵀ / (pairs·N·S), B = Σ g gᵀ / (pairs·N): K-FAC-expand's scaling.
            void Check(double[] actual, int dim, Func<int, float[]> source, double divisor)
            {
                for (int i = 0; i < dim; i++)
                {
                    for (int j = 0; j < dim; j++)
                    {
                        double sum = 0, magnitude = 0;
                        for (int p = 0; p < pairs; p++)
                        {
                            var x = source(p);
                            for (int r = 0; r < count * s; r++)
                            {
                                sum += (double)x[r * dim + i] * x[r * dim + j];
                                magnitude += Math.Abs((double)x[r * dim + i] * x[r * dim + j]);
                            }
                        }
                        Assert.That(actual[i * dim + j], Is.EqualTo(sum / divisor).Within(1e-6 * magnitude / divisor), $"layer {l}, ({i}, {j})");
                    }
                }
            }
            Check(a, inDim, p => batches[p].A[l], (double)pairs * count * s);
            Check(b, outDim, p => batches[p].G[l], (double)pairs * count);
        }
    }

    [Test]
    public void EigenvalueRefit_OneExampleOnePosition_EqualsKroneckerEigenvalues()
    {
        // With a single sample at S = 1, A = a aᵀ and B = g gᵀ are rank one, Ĝ = g aᵀ, and
        // (Q_Bᵀ Ĝ Q_A)²_ij = (q_Bᵢ·g)² (q_Aⱼ·a)² = λ_B,i λ_A,j exactly: EK-FAC and K-FAC coincide.
        var shape = new KroneckerLayerShape("linear", 19, 70, 1);
        var rng = new Random(9);
        var a = Enumerable.Range(0, shape.InDim).Select(_ => (float)TestRandom.Normal(rng)).ToArray();
        var g = Enumerable.Range(0, shape.OutDim).Select(_ => (float)TestRandom.Normal(rng)).ToArray();
        var factors = new[] { new LayerFactors(a, g, 1) };
        var accumulator = new KroneckerFactorAccumulator([shape]);
        accumulator.Add(factors, 1);
        var kfac = accumulator.Decompose(new byte[32]);
        var refit = new EigenvalueAccumulator(kfac);
        refit.Add(factors, 1);
        var ekfac = refit.Refit();
        var expected = kfac.Layers[0].KroneckerEigenvalues();
        var actual = ekfac.Layers[0].Corrected!;
        double scale = expected.Max();
        Assert.That(scale, Is.GreaterThan(0));
        for (int e = 0; e < expected.Length; e++)
        {
            Assert.That(actual[e], Is.EqualTo(expected[e]).Within(1e-6 * scale), $"entry {e}");
        }
    }

    [Test]
    public void EigenvalueRefit_SeveralExamplesAndPositions_IsMeanSquareOfRotatedGradients()
    {
        const int count = 4;
        var rng = new Random(12);
        var batches = Enumerable.Range(0, 2).Select(_ => RandomFactors(rng, count)).ToArray();
        var factors = new KroneckerFactorAccumulator(Shapes);
        foreach (var batch in batches)
        {
            factors.Add(batch.Factors, count);
        }
        var kfac = factors.Decompose(new byte[32]);
        var refit = new EigenvalueAccumulator(kfac);
        foreach (var batch in batches)
        {
            refit.Add(batch.Factors, count);
        }
        var ekfac = refit.Refit();
        Assert.That(ekfac.Kind, Is.EqualTo(CurvatureKind.Ekfac));
        for (int l = 0; l < Shapes.Length; l++)
        {
            var (_, inDim, outDim, s) = Shapes[l];
            var qa = kfac.Layers[l].Input.Vectors;
            var qb = kfac.Layers[l].Output.Vectors;
            var expected = new double[outDim * inDim];
            foreach (var batch in batches)
            {
                for (int n = 0; n < count; n++)
                {
                    // Ĝ = Σₛ g aᵀ in float64, then Q_Bᵀ Ĝ Q_A.
                    var grad = new double[outDim * inDim];
                    for (int p = 0; p < s; p++)
                    {
                        for (int o = 0; o < outDim; o++)
                        {
                            for (int i = 0; i < inDim; i++)
                            {
                                grad[o * inDim + i] += (double)batch.G[l][(n * s + p) * outDim + o] * batch.A[l][(n * s + p) * inDim + i];
                            }
                        }
                    }
                    for (int o = 0; o < outDim; o++)
                    {
                        for (int i = 0; i < inDim; i++)
                        {
                            double v = 0;
                            for (int x = 0; x < outDim; x++)
                            {
                                for (int y = 0; y < inDim; y++)
                                {
                                    v += qb[x * outDim + o] * grad[x * inDim + y] * qa[y * inDim + i];
                                }
                            }
                            expected[o * inDim + i] += v * v / (2 * count);
                        }
                    }
                }
            }
            double scale = expected.Max();
            var actual = ekfac.Layers[l].Corrected!;
            for (int e = 0; e < expected.Length; e++)
            {
                Assert.That(actual[e], Is.EqualTo(expected[e]).Within(1e-5 * scale), $"layer {l}, entry {e}");
            }
            // The basis is orthogonal, so Σ Λ = E‖Ĝ‖²_F as well.
            Assert.That(actual.Sum(), Is.EqualTo(expected.Sum()).Within(1e-5 * expected.Sum()));
        }
    }

    [Test]
    public void Accumulator_FactorsOfAnotherShape_Throws()
    {
        var accumulator = new KroneckerFactorAccumulator(Shapes);
        var (factors, _, _) = RandomFactors(new Random(1), 2);
        Assert.Throws<ArgumentException>(() => accumulator.Add(factors, 3));
        Assert.Throws<ArgumentException>(() => accumulator.Add(factors[..1], 2));
    }

    [Test]
    public void Save_HeaderLayout_IsPinnedAndRoundTrips()
    {
        var one = new EigenDecomposition(1, [2.0], [1.0]);
        var layer = new KroneckerLayer(new KroneckerLayerShape("l", 1, 1, 3), one, one with { Values = [5.0] }, [7.0]);
        var fingerprint = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var curvature = new KroneckerCurvature(CurvatureKind.Ekfac, [layer], 9, fingerprint);
        var path = Path.Combine(TempDir, "kfac.bin");
        curvature.Save(path);
        var bytes = File.ReadAllBytes(path);
        byte[] header =
        [
            (byte)'O', (byte)'A', (byte)'K', (byte)'F', (byte)'A', (byte)'C', (byte)'0', (byte)'1',
            1, 0, 0, 0,             // version
            1, 0, 0, 0,             // kind: EK-FAC
            1, 0, 0, 0,             // layers
            0, 0, 0, 0,
            9, 0, 0, 0, 0, 0, 0, 0, // samples
            .. fingerprint,
        ];
        Assert.That(bytes[..64], Is.EqualTo(header));
        // Layer: name length, name, in, out, positions, then Q_A, λ_A, Q_B, λ_B, Λ as float64.
        Assert.That(bytes, Has.Length.EqualTo(64 + 4 + 1 + 12 + 5 * 8));
        Assert.That(BitConverter.ToInt32(bytes, 64), Is.EqualTo(1));
        Assert.That(bytes[68], Is.EqualTo((byte)'l'));
        Assert.That(BitConverter.ToInt32(bytes, 77), Is.EqualTo(3));
        Assert.That(BitConverter.ToDouble(bytes, 81 + 8), Is.EqualTo(2.0));
        Assert.That(BitConverter.ToDouble(bytes, 81 + 24), Is.EqualTo(5.0));
        Assert.That(BitConverter.ToDouble(bytes, 81 + 32), Is.EqualTo(7.0));

        var loaded = KroneckerCurvature.Load(path);
        Assert.That(loaded.Kind, Is.EqualTo(CurvatureKind.Ekfac));
        Assert.That(loaded.Samples, Is.EqualTo(9));
        Assert.That(loaded.Fingerprint, Is.EqualTo(fingerprint));
        Assert.That(loaded.Shapes, Is.EqualTo(new[] { layer.Shape }));
        Assert.That(loaded.Layers[0].Corrected, Is.EqualTo(new[] { 7.0 }));
        Assert.That(loaded.Layers[0].Output.Values, Is.EqualTo(new[] { 5.0 }));
    }

    [Test]
    public void Load_TruncatedFile_ThrowsNamingIt()
    {
        var one = new EigenDecomposition(1, [2.0], [1.0]);
        var path = Path.Combine(TempDir, "kfac.bin");
        new KroneckerCurvature(CurvatureKind.Kfac, [new KroneckerLayer(new("l", 1, 1, 1), one, one)], 1, new byte[32]).Save(path);
        File.WriteAllBytes(path, File.ReadAllBytes(path)[..^4]);
        var e = Assert.Throws<OnnxAttribution.Store.StoreFormatException>(() => KroneckerCurvature.Load(path));
        Assert.That(e!.Message, Does.Contain(path).And.Contain("truncated"));
    }

    [Test]
    public void FisherSample_AnyBatching_SameDrawsPerRowScaledBySqrtTwoOverD()
    {
        const int d = 400;
        var plan = new FeaturizationPlan([10, 20], 2, 3, MeasurementKind.Loss);
        var eps = new float[3 * d];
        var batch = new float[3 * d];
        Measurement.FisherSample(3, 5, plan, d)(1, 1, eps, eps, batch);
        for (int b = 0; b < 3; b++)
        {
            var single = new float[d];
            Measurement.FisherSample(3, 5 + b, plan, d)(1, 1, eps.AsSpan(0, d), eps.AsSpan(0, d), single);
            Assert.That(batch.AsSpan(b * d, d).ToArray(), Is.EqualTo(single));
        }
        // E[c²] = 2/D: 1200 draws give the mean of z² within ±0.04 (one standard error) of 1.
        double meanSquare = batch.Average(c => (double)c * c) * d / 2;
        Assert.That(meanSquare, Is.EqualTo(1.0).Within(0.15));
        // Row 0 at pair 3 is not the plan's own noise of pair 3 under the same seed.
        var row0 = new float[d];
        Measurement.FisherSample(3, 0, plan, d)(1, 1, eps.AsSpan(0, d), eps.AsSpan(0, d), row0);
        var noise = new float[d];
        plan.Noise(1, 1, noise);
        var scaled = noise.Select(z => z * (float)Math.Sqrt(2.0 / d)).ToArray();
        Assert.That(row0, Is.Not.EqualTo(scaled));
    }
}
