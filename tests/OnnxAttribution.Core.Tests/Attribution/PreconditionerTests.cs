using OnnxAttribution.Core.Attribution;

namespace OnnxAttribution.Core.Tests.Attribution;

[TestFixture]
public sealed class PreconditionerTests
{
    private static float[] Rows(int n, int k, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
    }

    /// <summary>Reference: (ΦᵀΦ + λI) x = q by Gaussian elimination with partial pivoting, in float64.</summary>
    private static double[] ReferenceSolve(float[] phi, int n, int k, double lambda, float[] q)
    {
        var m = new double[k, k + 1];
        for (int a = 0; a < k; a++)
        {
            for (int b = 0; b < k; b++)
            {
                double s = 0;
                for (int r = 0; r < n; r++)
                {
                    s += (double)phi[r * k + a] * phi[r * k + b];
                }
                m[a, b] = s + (a == b ? lambda : 0);
            }
            m[a, k] = q[a];
        }
        for (int c = 0; c < k; c++)
        {
            int p = Enumerable.Range(c, k - c).MaxBy(r => Math.Abs(m[r, c]));
            for (int j = 0; j <= k; j++)
            {
                (m[c, j], m[p, j]) = (m[p, j], m[c, j]);
            }
            for (int r = 0; r < k; r++)
            {
                if (r != c)
                {
                    double f = m[r, c] / m[c, c];
                    for (int j = c; j <= k; j++)
                    {
                        m[r, j] -= f * m[c, j];
                    }
                }
            }
        }
        return Enumerable.Range(0, k).Select(i => m[i, k] / m[i, i]).ToArray();
    }

    [TestCase(50, 20, 1e-3)]
    [TestCase(7, 33, 1e-2)]   // fewer rows than dimensions: only the damping makes it invertible
    [TestCase(300, 64, 0.0)]
    public void Solve_MatchesDirectSolve(int n, int k, double relativeDamping)
    {
        var phi = Rows(n, k, n + k);
        var gram = new Preconditioner.GramAccumulator(k);
        gram.Add(phi.AsSpan(0, (n / 2) * k), n / 2);
        gram.Add(phi.AsSpan((n / 2) * k), n - n / 2);
        Assert.That(gram.Rows, Is.EqualTo(n));
        var pre = gram.Factorize(relativeDamping, new byte[32]);
        var q = Rows(1, k, 99);
        var x = new float[k];
        pre.Solve(q, x);
        var reference = ReferenceSolve(phi, n, k, pre.Damping, q);
        double scale = reference.Max(Math.Abs);
        for (int i = 0; i < k; i++)
        {
            Assert.That(x[i], Is.EqualTo(reference[i]).Within(1e-4 * scale), $"x[{i}]");
        }
    }

    [Test]
    public void SaveLoad_RoundTrips_AndRefusesOtherFeatures()
    {
        var dir = Directory.CreateTempSubdirectory("oa-prec-");
        try
        {
            int k = 16;
            var gram = new Preconditioner.GramAccumulator(k);
            gram.Add(Rows(40, k, 1), 40);
            var fingerprint = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
            var pre = gram.Factorize(1e-3, fingerprint);
            var path = Path.Combine(dir.FullName, "preconditioner.bin");
            pre.Save(path);
            var loaded = Preconditioner.Load(path, k, fingerprint);
            var q = Rows(1, k, 5);
            var a = new float[k];
            var b = new float[k];
            pre.Solve(q, a);
            loaded.Solve(q, b);
            Assert.That(b, Is.EqualTo(a));
            var other = (byte[])fingerprint.Clone();
            other[0] ^= 1;
            var e = Assert.Throws<AttributionException>(() => Preconditioner.Load(path, k, other));
            Assert.That(e!.Message, Does.Contain("other features"));
            Assert.Throws<AttributionException>(() => Preconditioner.Load(path, k + 1, fingerprint));

            Assert.That(Preconditioner.IsComplete(path, k, fingerprint, 1e-3), Is.True);
            Assert.That(Preconditioner.IsComplete(path, k, fingerprint, 1e-2), Is.False, "other damping");
            Assert.That(Preconditioner.IsComplete(path, k, other, 1e-3), Is.False, "other features");
            Assert.That(Preconditioner.IsComplete(path + ".missing", k, fingerprint, 1e-3), Is.False);
            using (var file = File.OpenWrite(path))
            {
                file.SetLength(file.Length - 8);
            }
            Assert.That(Preconditioner.IsComplete(path, k, fingerprint, 1e-3), Is.False, "truncated");
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Test]
    public void Factorize_SingularWithoutDamping_ThrowsWithAdvice()
    {
        var gram = new Preconditioner.GramAccumulator(10);
        gram.Add(Rows(3, 10, 2), 3);
        var e = Assert.Throws<AttributionException>(() => gram.Factorize(0, new byte[32]));
        Assert.That(e!.Message, Does.Contain("--damping"));
    }
}
