
namespace OnnxAttribution.Primitives.Tests.Numerics;

[TestFixture]
public sealed class SymmetricEigenTests
{
    private static void AssertDecomposes(double[] m, int n, double[]? expectedValues = null)
    {
        var e = SymmetricEigen.Decompose(m, n);
        double scale = Math.Max(1e-300, m.Max(Math.Abs));
        var back = e.Reconstruct();
        double worst = 0;
        for (int i = 0; i < m.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(back[i] - m[i]));
        }
        Assert.That(worst / scale, Is.LessThanOrEqualTo(1e-9), $"n = {n}: reconstruction error {worst:E2} of max entry {scale:E2}");
        // QᵀQ = I.
        for (int a = 0; a < n; a++)
        {
            for (int b = 0; b < n; b++)
            {
                double dot = 0;
                for (int i = 0; i < n; i++)
                {
                    dot += e.Vectors[i * n + a] * e.Vectors[i * n + b];
                }
                Assert.That(dot, Is.EqualTo(a == b ? 1.0 : 0.0).Within(1e-12), $"column {a}·column {b}");
            }
        }
        for (int j = 1; j < n; j++)
        {
            Assert.That(e.Values[j], Is.LessThanOrEqualTo(e.Values[j - 1]), "descending");
        }
        if (expectedValues is not null)
        {
            var sorted = expectedValues.OrderByDescending(v => v).ToArray();
            for (int j = 0; j < n; j++)
            {
                Assert.That(e.Values[j], Is.EqualTo(sorted[j]).Within(1e-10 * scale * n), $"eigenvalue {j}");
            }
        }
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(7)]
    [TestCase(40)]
    [TestCase(97)]
    public void Decompose_RandomSpd_ReconstructsAndFindsSpectrum(int n)
    {
        var rng = new Random(n);
        var values = Enumerable.Range(0, n).Select(_ => Math.Exp(4 * (rng.NextDouble() - 0.5))).ToArray();
        AssertDecomposes(TestMatrices.Compose(TestMatrices.RandomOrthogonal(n, rng), values, n), n, values);
    }

    [TestCase(6)]
    [TestCase(50)]
    public void Decompose_RepeatedEigenvalues_ReconstructsAndFindsSpectrum(int n)
    {
        // Three clusters of exactly equal eigenvalues (Jacobi's hard case for the vectors, not for the reconstruction).
        var rng = new Random(100 + n);
        var values = Enumerable.Range(0, n).Select(i => i % 3 == 0 ? 2.0 : i % 3 == 1 ? 0.5 : 1e-3).ToArray();
        AssertDecomposes(TestMatrices.Compose(TestMatrices.RandomOrthogonal(n, rng), values, n), n, values);
    }

    [TestCase(30, 1)]
    [TestCase(64, 5)]
    public void Decompose_LowRankPsd_ReconstructsWithZeroTail(int n, int rank)
    {
        // Σ of `rank` outer products, as a K-FAC factor from few samples is: eigenvalues beyond the rank are zero.
        var rng = new Random(n * rank);
        var m = new double[n * n];
        for (int r = 0; r < rank; r++)
        {
            var v = Enumerable.Range(0, n).Select(_ => TestRandom.Normal(rng)).ToArray();
            for (int i = 0; i < n; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    m[i * n + j] += v[i] * v[j];
                }
            }
        }
        AssertDecomposes(m, n);
        var e = SymmetricEigen.Decompose(m, n);
        Assert.That(e.Values.Skip(rank).Max(Math.Abs), Is.LessThanOrEqualTo(1e-12 * e.Values[0]));
    }

    [Test]
    public void Decompose_Diagonal_ReturnsItsEntriesSorted()
    {
        var m = new double[] { 1, 0, 0, 0, 3, 0, 0, 0, 2 };
        var e = SymmetricEigen.Decompose(m, 3);
        Assert.That(e.Values, Is.EqualTo(new[] { 3.0, 2.0, 1.0 }));
        Assert.That(Math.Abs(e.Vectors[1 * 3 + 0]), Is.EqualTo(1.0));
    }

    [Test]
    public void Decompose_WrongLengthOrNaN_Throws()
    {
        Assert.Throws<ArgumentException>(() => SymmetricEigen.Decompose(new double[5], 2));
        Assert.Throws<ArgumentException>(() => SymmetricEigen.Decompose(new[] { 1, double.NaN, double.NaN, 1 }, 2));
    }
}
