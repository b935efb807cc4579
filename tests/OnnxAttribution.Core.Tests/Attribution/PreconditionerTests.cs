using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Primitives;

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
        var m = new double[k, k];
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
        }
        return ReferenceSolver.Solve(m, q.Select(v => (double)v).ToArray());
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
            var loaded = Preconditioner.Load(path, k, 40, fingerprint);
            var q = Rows(1, k, 5);
            var a = new float[k];
            var b = new float[k];
            pre.Solve(q, a);
            loaded.Solve(q, b);
            Assert.That(b, Is.EqualTo(a));
            var other = (byte[])fingerprint.Clone();
            other[0] ^= 1;
            var e = Assert.Throws<AttributionException>(() => Preconditioner.Load(path, k, 40, other));
            Assert.That(e!.Message, Does.Contain("other features"));
            Assert.Throws<AttributionException>(() => Preconditioner.Load(path, k + 1, 40, fingerprint));

            Assert.That(Preconditioner.IsComplete(path, k, 40, fingerprint, 1e-3), Is.True);
            Assert.That(Preconditioner.IsComplete(path, k, 40, fingerprint, 1e-2), Is.False, "other damping");
            Assert.That(Preconditioner.IsComplete(path, k, 40, other, 1e-3), Is.False, "other features");
            Assert.That(Preconditioner.IsComplete(path + ".missing", k, 40, fingerprint, 1e-3), Is.False);
            using (var file = File.OpenWrite(path))
            {
                file.SetLength(file.Length - 8);
            }
            Assert.That(Preconditioner.IsComplete(path, k, 40, fingerprint, 1e-3), Is.False, "truncated");
        }
        finally
        {
            dir.Delete(true);
        }
    }

    /// <summary>ΦΦᵀ's lower triangle in float64, row-major n × n.</summary>
    private static double[] DualKernelOf(float[] phi, int n, int k)
    {
        var kernel = new double[n * n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j <= i; j++)
            {
                double s = 0;
                for (int c = 0; c < k; c++)
                {
                    s += (double)phi[i * k + c] * phi[j * k + c];
                }
                kernel[i * n + j] = s;
            }
        }
        return kernel;
    }

    [TestCase(7, 33, 1e-2)]    // N < k: the case the dual form is for
    [TestCase(30, 200, 1e-1)]
    [TestCase(50, 20, 1e-3)]   // N > k: the same scores, at more cost
    public void SolveDual_GivesThePrimalScores(int n, int k, double relativeDamping)
    {
        var phi = Rows(n, k, 3 * n + k);
        var primal = new Preconditioner.GramAccumulator(k);
        primal.Add(phi, n);
        var primalFactor = primal.Factorize(relativeDamping, new byte[32]);
        var dual = Preconditioner.GramAccumulator.Dual(DualKernelOf(phi, n, k), n, k).Factorize(relativeDamping, new byte[32]);
        Assert.That(dual.Form, Is.EqualTo(KernelForm.Dual));
        Assert.That(dual.Order, Is.EqualTo(n));
        Assert.That(dual.Damping, Is.EqualTo(primalFactor.Damping).Within(1e-12 * primalFactor.Damping), "the same absolute λ from the same relative one");

        var q = Rows(1, k, 17);
        // Reference scores Φ (ΦᵀΦ + λI)⁻¹ q, all in float64.
        var x = ReferenceSolve(phi, n, k, primalFactor.Damping, q);
        var reference = Enumerable.Range(0, n).Select(i => Enumerable.Range(0, k).Sum(c => (double)phi[i * k + c] * x[c])).ToArray();
        var tau = Enumerable.Range(0, n).Select(i => Enumerable.Range(0, k).Sum(c => (double)phi[i * k + c] * q[c])).ToArray();
        dual.SolveDual(tau);
        double scale = reference.Max(Math.Abs);
        for (int i = 0; i < n; i++)
        {
            Assert.That(tau[i], Is.EqualTo(reference[i]).Within(1e-9 * scale), $"score of row {i}");
        }
        Assert.Throws<InvalidOperationException>(() => dual.Solve(q, new float[k]), "a dual factor has no k-vector solve");
        Assert.Throws<InvalidOperationException>(() => primalFactor.SolveDual(new double[k]), "a primal factor has no N-vector solve");
    }

    [Test]
    public void SaveLoad_DualForm_RoundTrips_AndChecksTheRowCount()
    {
        var dir = Directory.CreateTempSubdirectory("oa-prec-");
        try
        {
            int n = 9, k = 40;
            var phi = Rows(n, k, 8);
            var fingerprint = Enumerable.Range(0, 32).Select(i => (byte)(i * 3)).ToArray();
            var pre = Preconditioner.GramAccumulator.Dual(DualKernelOf(phi, n, k), n, k).Factorize(1e-2, fingerprint);
            var path = Path.Combine(dir.FullName, "preconditioner.bin");
            pre.Save(path);
            Assert.That(new FileInfo(path).Length, Is.EqualTo(Preconditioner.FileLength(n)));

            var loaded = Preconditioner.Load(path, k, n, fingerprint);
            Assert.That(loaded.Form, Is.EqualTo(KernelForm.Dual));
            var a = Enumerable.Range(0, n).Select(i => (double)i - 4).ToArray();
            var b = (double[])a.Clone();
            pre.SolveDual(a);
            loaded.SolveDual(b);
            Assert.That(b, Is.EqualTo(a));

            var e = Assert.Throws<AttributionException>(() => Preconditioner.Load(path, k, n + 1, fingerprint))!;
            Assert.That(e.Message, Does.Contain("rows (dual form) 9").And.Contain("rows (dual form) 10"));
            Assert.That(Preconditioner.IsComplete(path, k, n, fingerprint, 1e-2), Is.True);
            Assert.That(Preconditioner.IsComplete(path, n, k, fingerprint, 1e-2), Is.False, "a dual factor of 9 rows is not complete for a store of 40 rows");
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [TestCase(1000, 4096, KernelForm.Primal)]
    [TestCase(1000, 8192, KernelForm.Primal)]
    [TestCase(1000, 16384, KernelForm.Dual)]
    [TestCase(60000, 16384, KernelForm.Primal)]
    public void ChooseForm_DualOnlyForLargeKOverFewerRows(long rows, int dim, KernelForm expected) =>
        Assert.That(Preconditioner.ChooseForm(rows, dim), Is.EqualTo(expected));

    [Test]
    public void Factorize_SingularWithoutDamping_ThrowsWithAdvice()
    {
        var gram = new Preconditioner.GramAccumulator(10);
        gram.Add(Rows(3, 10, 2), 3);
        var e = Assert.Throws<SettingException>(() => gram.Factorize(0, new byte[32]));
        Assert.That(e!.Setting, Is.EqualTo("Damping"));
        Assert.That(e.Message, Does.StartWith("Damping = 0: ").And.Contain("not positive definite at column").And.Contain("raise the damping"));
    }
}
