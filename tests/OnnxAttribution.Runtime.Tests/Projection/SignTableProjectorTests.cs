using OnnxAttribution.Runtime.Projection;

namespace OnnxAttribution.Runtime.Tests.Projection;

public sealed class SignTableProjectorTests
{
    /// <summary>
    /// Sizes around every boundary the cache has: p below, at and past a group of eight rows, k below, at and past a
    /// 16-column vector and a 128-column tile (so both the register tiles and the remainder loop run).
    /// </summary>
    private static readonly (int P, int K)[] Sizes =
    [
        (1, 1), (7, 15), (8, 16), (9, 17), (1001, 100), (1001, 128), (4099, 129), (10_007, 300), (3000, 2048),
    ];

    /// <summary>
    /// y is checked against Pᵀg summed in double precision from P's rows (DenseProjector.FillRow): the
    /// difference must stay within 10⁻⁶ of Σ|s·gᵣ|. One wrong sign moves a column by 2s|gᵣ|, far more than that at these p.
    /// </summary>
    [TestCaseSource(nameof(Sizes))]
    public void Project_MatchesDoublePrecisionReference((int P, int K) size)
    {
        var (p, k) = size;
        var dense = new DenseProjector(p, k, ProjectionKind.Rademacher, seed: 31);
        var g = RandomVector(p, seed: p + k);
        var y = new float[k];
        new SignTableProjector(dense).Project(g, y);

        var reference = new double[k];
        var row = new float[k];
        double absSum = 0;
        for (int r = 0; r < p; r++)
        {
            dense.FillRow(r, row);
            for (int j = 0; j < k; j++)
            {
                reference[j] += (double)row[j] * g[r];
            }
            absSum += Math.Abs(g[r]) * dense.Scale;
        }
        for (int j = 0; j < k; j++)
        {
            Assert.That(y[j], Is.EqualTo(reference[j]).Within(1e-6 * absSum), $"column {j} of {k}, p = {p}");
        }
        // One flipped sign is caught: the smallest change a wrong entry could make is 2s·min|gᵣ|.
        Assert.That(2 * dense.Scale * g.Min(Math.Abs), Is.GreaterThan(1e-6 * absSum));
    }

    /// <summary>The dense projector and the tables give the same features up to rounding, at the shipped model's k.</summary>
    [Test]
    public void Project_AgreesWithDenseProjector()
    {
        const int p = 20_000, k = 2048;
        var dense = new DenseProjector(p, k, ProjectionKind.Rademacher, seed: 5);
        var g = RandomVector(p, seed: 9);
        var expected = new float[k];
        dense.Project(g, expected);
        var actual = new float[k];
        new SignTableProjector(dense).Project(g, actual);
        double absSum = g.Sum(v => Math.Abs(v) * dense.Scale);
        for (int j = 0; j < k; j++)
        {
            Assert.That(actual[j], Is.EqualTo(expected[j]).Within(2e-6 * absSum), $"column {j}");
        }
        Assert.That(actual, Is.Not.EqualTo(new float[k]));
    }

    /// <summary>
    /// Bit-identical across thread counts and between the AVX-512 tiles and the portable loop. The inputs span twelve
    /// orders of magnitude, so any change in the order of the additions would show in the low bits.
    /// </summary>
    [Test]
    public void Project_IsBitIdenticalAcrossThreadsAndPaths()
    {
        const int p = 5003, k = 640;
        var dense = new DenseProjector(p, k, ProjectionKind.Rademacher, seed: 77);
        var random = new Random(3);
        var g = Enumerable.Range(0, p).Select(_ => (float)((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-6, 6)))).ToArray();
        var one = new SignTableProjector(dense, maxDegreeOfParallelism: 1);
        var many = new SignTableProjector(dense, maxDegreeOfParallelism: 4);
        var portable = new SignTableProjector(dense, maxDegreeOfParallelism: 3) { UseVectorTiles = false };
        var y1 = new float[k];
        var y4 = new float[k];
        var y3 = new float[k];
        one.Project(g, y1);
        many.Project(g, y4);
        portable.Project(g, y3);
        Assert.That(y4.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(y1.Select(BitConverter.SingleToInt32Bits)));
        Assert.That(y3.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(y1.Select(BitConverter.SingleToInt32Bits)));

        // The order matters at all: the dense projector's row-by-row sum differs in some low bits.
        var rowOrder = new float[k];
        dense.Project(g, rowOrder);
        Assert.That(rowOrder.Select(BitConverter.SingleToInt32Bits), Is.Not.EqualTo(y1.Select(BitConverter.SingleToInt32Bits)));
    }

    [Test]
    public void Shared_SameProjection_OneCache_OtherSeedOrKindAnother()
    {
        var dense = new DenseProjector(1000, 64, ProjectionKind.Rademacher, 8);
        var first = SignTableProjector.Shared(dense);

        Assert.That(SignTableProjector.Shared(new DenseProjector(1000, 64, ProjectionKind.Rademacher, 8)), Is.SameAs(first));
        Assert.That(SignTableProjector.Shared(new DenseProjector(1000, 64, ProjectionKind.Rademacher, 9)), Is.Not.SameAs(first));
        Assert.That(() => SignTableProjector.Shared(new DenseProjector(1000, 64, ProjectionKind.Gaussian, 8)), Throws.ArgumentException);
        GC.KeepAlive(first);
    }

    [Test]
    public void Transpose8_SwapsRowAndColumnBits()
    {
        var random = new Random(11);
        for (int n = 0; n < 200; n++)
        {
            ulong x = (ulong)random.NextInt64() ^ ((ulong)random.Next() << 40);
            ulong expected = 0;
            for (int i = 0; i < 8; i++)
            {
                for (int l = 0; l < 8; l++)
                {
                    expected |= ((x >> (8 * i + l)) & 1) << (8 * l + i);
                }
            }
            Assert.That(SignTableProjector.Transpose8(x), Is.EqualTo(expected));
        }
    }

    [Test]
    public void CacheBytes_IsOneBytePerColumnPerEightRows()
    {
        var tables = new SignTableProjector(new DenseProjector(17, 20, ProjectionKind.Rademacher, 1));
        Assert.That(tables.CacheBytes, Is.EqualTo(3 * 32));
        Assert.That(SignTableProjector.CacheBytesFor(295_000, 2048), Is.EqualTo(75_520_000));
    }

    [Test]
    public void Constructor_RefusesGaussianProjection()
    {
        var gaussian = new DenseProjector(100, 16, ProjectionKind.Gaussian, 1);
        Assert.That(() => new SignTableProjector(gaussian), Throws.ArgumentException.With.Message.Contains("Rademacher"));
    }

    [Test]
    public void Project_RefusesWrongLengths()
    {
        var tables = new SignTableProjector(new DenseProjector(100, 16, ProjectionKind.Rademacher, 1));
        Assert.That(() => tables.Project(new float[99], new float[16]), Throws.ArgumentException.With.Message.Contains("100 gradient values"));
        Assert.That(() => tables.Project(new float[100], new float[15]), Throws.ArgumentException.With.Message.Contains("16 destination values"));
    }

    private static float[] RandomVector(int length, int seed)
    {
        var random = new Random(seed);
        // Bounded away from zero so that one flipped sign is always visible.
        return Enumerable.Range(0, length).Select(_ => (float)((random.Next(2) * 2 - 1) * (0.5 + random.NextDouble()))).ToArray();
    }
}
