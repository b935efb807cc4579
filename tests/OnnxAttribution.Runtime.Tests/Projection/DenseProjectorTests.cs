using OnnxAttribution.Runtime.Projection;

namespace OnnxAttribution.Runtime.Tests.Projection;

public sealed class DenseProjectorTests
{
    private static readonly ProjectionKind[] Kinds = [ProjectionKind.Rademacher, ProjectionKind.Gaussian];

    // ---- (a) Johnson–Lindenstrauss

    /// <summary>
    /// 50 Gaussian vectors in ℝ⁵⁰⁰⁰ projected to k = 1024. For a Gaussian P, ⟨Px,Py⟩ − ⟨x,y⟩ has mean 0 and variance
    /// σ² = (‖x‖²‖y‖² + ⟨x,y⟩²)/k exactly (2‖x‖⁴/k for a squared norm); for a Rademacher P the variance is smaller by
    /// 2Σᵢxᵢ²yᵢ²/k. A sum of k independent terms is close to normal, so each error exceeds 5σ with probability ≈ 6·10⁻⁷,
    /// and all 1,275 pairs plus 50 norms stay within 5σ with probability > 0.999 (union bound). 5σ ≤ 5√2‖x‖‖y‖/√k, i.e.
    /// ε ≈ 0.22 relative to ‖x‖‖y‖, inside the Dasgupta–Gupta guarantee for 50 points at this k (ε ≈ 0.28 at
    /// failure probability 10⁻³). The root-mean-square of the standardised errors must also be ≈ 1 (its standard
    /// error over 1,325 nearly independent errors is ≈ 0.02): a projection that is too good or too bad fails.
    /// </summary>
    [TestCaseSource(nameof(Kinds))]
    public void ProjectBatch_FiftyVectorsToK1024_PreservesInnerProductsWithinJlBounds(ProjectionKind kind)
    {
        const int n = 50, p = 5000, k = 1024;
        var random = new Random(77);
        var x = new float[n * p];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = (float)Gaussian(random);
        }
        var y = new float[n * k];
        new DenseProjector(p, k, kind, seed: 123).ProjectBatch(x, n, y);

        var norms = Enumerable.Range(0, n).Select(a => Dot(x.AsSpan(a * p, p), x.AsSpan(a * p, p))).ToArray();
        double worst = 0, sumSquares = 0;
        int comparisons = 0;
        for (int a = 0; a < n; a++)
        {
            for (int b = a; b < n; b++)
            {
                double dot = a == b ? norms[a] : Dot(x.AsSpan(a * p, p), x.AsSpan(b * p, p));
                double projected = Dot(y.AsSpan(a * k, k), y.AsSpan(b * k, k));
                double sigma = Math.Sqrt((norms[a] * norms[b] + dot * dot) / k);
                double z = (projected - dot) / sigma;
                worst = Math.Max(worst, Math.Abs(z));
                sumSquares += z * z;
                comparisons++;
            }
        }
        double rms = Math.Sqrt(sumSquares / comparisons);
        TestContext.Out.WriteLine($"{kind}: worst |error| = {worst:F2}σ, rms = {rms:F3}σ over {comparisons} comparisons");
        Assert.That(worst, Is.LessThanOrEqualTo(5.0));
        Assert.That(rms, Is.EqualTo(1.0).Within(0.12));
    }

    // ---- (b) determinism

    [TestCaseSource(nameof(Kinds))]
    public void ProjectBatch_AnyBatchSizeBlockSizeOrThreadCount_IsBitIdentical(ProjectionKind kind)
    {
        const int p = 700, k = 200, count = 7;
        var x = RandomVector(new Random(1), count * p);
        var reference = new float[count * k];
        new DenseProjector(p, k, kind, 9) { MaxDegreeOfParallelism = 1, RowBlockSize = 64, ColumnBlockSize = 64 }.ProjectBatch(x, count, reference);

        var configurations = new (int Threads, int RowBlock, int ColumnBlock)[]
        {
            (-1, 128, 256), (2, 1, 32), (3, 7, 16), (1, 1000, 1024), (2, 333, 48),
        };
        foreach (var (threads, rowBlock, columnBlock) in configurations)
        {
            var projector = new DenseProjector(p, k, kind, 9) { MaxDegreeOfParallelism = threads, RowBlockSize = rowBlock, ColumnBlockSize = columnBlock };
            var batched = new float[count * k];
            projector.ProjectBatch(x, count, batched);
            AssertBitIdentical(batched, reference, $"threads {threads}, rows {rowBlock}, columns {columnBlock}");

            // One at a time (batch of 1), and in batches of 3 + 4.
            var single = new float[count * k];
            for (int e = 0; e < count; e++)
            {
                projector.Project(x.AsSpan(e * p, p), single.AsSpan(e * k, k));
            }
            AssertBitIdentical(single, reference, $"single, threads {threads}");
            var split = new float[count * k];
            projector.ProjectBatch(x.AsSpan(0, 3 * p), 3, split.AsSpan(0, 3 * k));
            projector.ProjectBatch(x.AsSpan(3 * p), 4, split.AsSpan(3 * k));
            AssertBitIdentical(split, reference, $"3 + 4, threads {threads}");
        }
    }

    [TestCaseSource(nameof(Kinds))]
    public void Project_DifferentSeed_GivesDifferentOutput(ProjectionKind kind)
    {
        var x = RandomVector(new Random(2), 300);
        var a = new float[64];
        var b = new float[64];
        new DenseProjector(300, 64, kind, 1).Project(x, a);
        new DenseProjector(300, 64, kind, 2).Project(x, b);
        int equal = a.Zip(b).Count(t => t.First == t.Second);
        Assert.That(equal, Is.LessThan(3));
    }

    // ---- (c) pieces

    [TestCaseSource(nameof(Kinds))]
    public void ProjectAccumulate_PiecesInOrder_EqualsProjectOfWholeBitForBit(ProjectionKind kind)
    {
        const int p = 2345, k = 100;
        var random = new Random(3);
        var x = RandomVector(random, p);
        var projector = new DenseProjector(p, k, kind, 17);
        var whole = new float[k];
        projector.Project(x, whole);

        var pieces = new float[k];
        int[] cuts = [0, 1, 1, 300, 301, 1024, 2000, 2345];
        for (int c = 0; c + 1 < cuts.Length; c++)
        {
            projector.ProjectAccumulate(x.AsSpan(cuts[c], cuts[c + 1] - cuts[c]), cuts[c], pieces);
        }
        AssertBitIdentical(pieces, whole, "pieces");
    }

    [Test]
    public void ProjectAccumulateBatch_TwoPieces_EqualsProjectBatch()
    {
        const int p = 500, k = 48, count = 5, cut = 123;
        var x = RandomVector(new Random(4), count * p);
        var projector = new DenseProjector(p, k, ProjectionKind.Gaussian, 5);
        var whole = new float[count * k];
        projector.ProjectBatch(x, count, whole);

        var first = new float[count * cut];
        var second = new float[count * (p - cut)];
        for (int e = 0; e < count; e++)
        {
            x.AsSpan(e * p, cut).CopyTo(first.AsSpan(e * cut));
            x.AsSpan(e * p + cut, p - cut).CopyTo(second.AsSpan(e * (p - cut)));
        }
        var pieces = new float[count * k];
        projector.ProjectAccumulateBatch(first, count, 0, pieces);
        projector.ProjectAccumulateBatch(second, count, cut, pieces);
        AssertBitIdentical(pieces, whole, "batched pieces");
    }

    // ---- the projection is Pᵀg for the P that FillRow reports, at every output length 1..256

    [TestCaseSource(nameof(Kinds))]
    public void Project_EveryOutputDim1To256_MatchesFloat64ReferenceOfFillRow(ProjectionKind kind)
    {
        const int p = 37;
        var random = new Random(6);
        var x = RandomVector(random, p);
        for (int k = 1; k <= 256; k++)
        {
            var projector = new DenseProjector(p, k, kind, (ulong)k);
            var actual = new float[k];
            projector.Project(x, actual);
            var expected = new double[k];
            var scale = new double[k];
            var row = new float[k];
            for (int r = 0; r < p; r++)
            {
                projector.FillRow(r, row);
                for (int j = 0; j < k; j++)
                {
                    expected[j] += (double)row[j] * x[r];
                    scale[j] += Math.Abs((double)row[j] * x[r]);
                }
            }
            for (int j = 0; j < k; j++)
            {
                // float32 sums of p terms: |error| ≤ p·2⁻²⁴·Σ|terms| (plus the scale's own rounding).
                double tolerance = (p + 2) * 6e-8 * scale[j] + 1e-30;
                if (Math.Abs(actual[j] - expected[j]) > tolerance)
                {
                    Assert.Fail($"k {k}, column {j}: {actual[j]:R} vs {expected[j]:R}");
                }
            }
        }
    }

    // ---- (f) entries

    [Test]
    public void FillRow_Rademacher_EntriesAreExactlyPlusMinusOneOverRootK()
    {
        const int k = 1000, rows = 200;
        var projector = new DenseProjector(rows, k, ProjectionKind.Rademacher, 8);
        float s = (float)(1 / Math.Sqrt(k));
        var row = new float[k];
        long positive = 0;
        double sumSquares = 0;
        for (int r = 0; r < rows; r++)
        {
            projector.FillRow(r, row);
            foreach (float v in row)
            {
                Assert.That(Math.Abs(v), Is.EqualTo(s), "magnitude is exactly 1/√k");
                positive += v > 0 ? 1 : 0;
                sumSquares += (double)v * v;
            }
        }
        double n = (double)rows * k;
        Assert.That(projector.Scale, Is.EqualTo(s));
        // Mean of ±1: standard error 1/√200,000 = 0.0022.
        Assert.That((2.0 * positive - n) / n, Is.EqualTo(0).Within(0.011));
        Assert.That(sumSquares / n, Is.EqualTo(1.0 / k).Within(1e-9));
    }

    [Test]
    public void FillRow_Gaussian_EntriesHaveMeanZeroAndVarianceOneOverK()
    {
        const int k = 512, rows = 400;
        var projector = new DenseProjector(rows, k, ProjectionKind.Gaussian, 8);
        var row = new float[k];
        double n = 0, sum = 0, sumSquares = 0;
        for (int r = 0; r < rows; r++)
        {
            projector.FillRow(r, row);
            foreach (float v in row)
            {
                n++;
                sum += v;
                sumSquares += (double)v * v;
            }
        }
        // 204,800 draws: standard errors √(1/k/n) for the mean and √(2/n)/k for the variance; 5 of each allowed.
        Assert.That(sum / n, Is.EqualTo(0).Within(5 * Math.Sqrt(1.0 / k / n)));
        Assert.That(sumSquares / n, Is.EqualTo(1.0 / k).Within(5 * Math.Sqrt(2 / n) / k));
    }

    // ---- validation

    [Test]
    public void ProjectBatch_WrongLengths_Throw()
    {
        var projector = new DenseProjector(10, 4, ProjectionKind.Rademacher, 1);
        Assert.Multiple(() =>
        {
            Assert.That(() => projector.Project(new float[9], new float[4]), Throws.ArgumentException);
            Assert.That(() => projector.Project(new float[10], new float[5]), Throws.ArgumentException);
            Assert.That(() => projector.ProjectBatch(new float[20], 3, new float[12]), Throws.ArgumentException);
            Assert.That(() => projector.ProjectBatch(new float[0], -1, new float[0]), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => projector.ProjectAccumulate(new float[5], 6, new float[4]), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => projector.ProjectAccumulate(new float[5], -1, new float[4]), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => new DenseProjector(0, 4, ProjectionKind.Rademacher, 1), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => new DenseProjector(10, 4, (ProjectionKind)7, 1), Throws.ArgumentException);
            Assert.That(() => new DenseProjector(10, 4, ProjectionKind.Rademacher, 1) { ColumnBlockSize = 40 }, Throws.InstanceOf<ArgumentOutOfRangeException>());
        });
    }

    [Test]
    public void ProjectBatch_CountZero_LeavesNothingToDo()
    {
        var projector = new DenseProjector(10, 4, ProjectionKind.Gaussian, 1);
        Assert.That(() => projector.ProjectBatch(ReadOnlySpan<float>.Empty, 0, Span<float>.Empty), Throws.Nothing);
    }

    // ---- helpers

    internal static void AssertBitIdentical(float[] actual, float[] expected, string what)
    {
        Assert.That(actual, Has.Length.EqualTo(expected.Length));
        for (int i = 0; i < actual.Length; i++)
        {
            if (BitConverter.SingleToUInt32Bits(actual[i]) != BitConverter.SingleToUInt32Bits(expected[i]))
            {
                Assert.Fail($"{what}: index {i}: {actual[i]:R} vs {expected[i]:R}");
            }
        }
    }

    internal static float[] RandomVector(Random random, int length)
    {
        var v = new float[length];
        for (int i = 0; i < length; i++)
        {
            v[i] = (float)(random.NextDouble() * 2 - 1);
        }
        return v;
    }

    internal static double Gaussian(Random random) => TestRandom.Normal(random);

    private static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++)
        {
            sum += (double)a[i] * b[i];
        }
        return sum;
    }
}
