using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests.Attribution;

/// <summary>A store finalized in the dual form scores as the same store finalized in the primal form.</summary>
public sealed class DualKernelTests : TempDirectoryTest
{
    private string MakeStore(string name, int rows, int dim, StoreDType dtype = StoreDType.Float32)
    {
        var dir = Path.Combine(TempDir, name);
        StoreTestData.WriteAll(dir, StoreTestData.Meta(rows, dim, dtype)).Dispose();
        return dir;
    }

    /// <summary>Primal scores Φ (ΦᵀΦ + λI)⁻¹ q through the scan, and dual scores (ΦΦᵀ + λI)⁻¹ Φ q, of one store.</summary>
    private static (float[] Primal, float[] Dual) BothScores(string dir, float[] queries, int count, double relativeDamping)
    {
        var primal = PreconditionerBuilder.Finalize(dir, relativeDamping, form: KernelForm.Primal);
        using var store = FeatureStore.Open(dir);
        int k = store.Dim;
        var x = new float[queries.Length];
        for (int q = 0; q < count; q++)
        {
            primal.Solve(queries.AsSpan(q * k, k), x.AsSpan(q * k, k));
        }
        var primalScores = new float[count * store.Rows];
        store.Scores(x, count, primalScores);

        var dual = PreconditionerBuilder.Finalize(dir, relativeDamping, form: KernelForm.Dual);
        Assert.That((dual.Form, dual.Order), Is.EqualTo((KernelForm.Dual, (int)store.Rows)));
        Assert.That(dual.Damping, Is.EqualTo(primal.Damping).Within(1e-12 * primal.Damping), "the same λ: trace(ΦΦᵀ) = trace(ΦᵀΦ), both over k");
        var dualScores = new float[count * store.Rows];
        DualKernel.Scores(store, dual, queries, count, dualScores);
        return (primalScores, dualScores);
    }

    /// <summary>τ = (ΦΦᵀ + λI)⁻¹ Φ q in float64 by Gaussian elimination with partial pivoting (not Cholesky).</summary>
    private static double[] ReferenceScores(float[] phi, int n, int k, double lambda, ReadOnlySpan<float> q)
    {
        var m = new double[n, n];
        var b = new double[n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double dot = 0;
                for (int c = 0; c < k; c++)
                {
                    dot += (double)phi[i * k + c] * phi[j * k + c];
                }
                m[i, j] = dot + (i == j ? lambda : 0);
            }
            for (int c = 0; c < k; c++)
            {
                b[i] += (double)phi[i * k + c] * q[c];
            }
        }
        return ReferenceSolver.Solve(m, b);
    }

    [TestCase(24, 96, 1e-1)]
    [TestCase(24, 96, 1e-3)]
    [TestCase(60, 16, 1e-2)]
    public void Finalize_DualForm_ScoresAsThePrimal_AndCloserToFloat64(int rows, int dim, double relativeDamping)
    {
        var dir = MakeStore("s", rows, dim);
        int count = 3;
        var queries = StoreTestData.Rows(1000, count, dim);

        var (primal, dual) = BothScores(dir, queries, count, relativeDamping);

        double lambda = PreconditionerBuilder.Finalize(dir, relativeDamping).Damping;
        var phi = StoreTestData.Rows(0, rows, dim);
        double worstPrimal = 0, worstDual = 0, scale = 0;
        for (int q = 0; q < count; q++)
        {
            var reference = ReferenceScores(phi, rows, dim, lambda, queries.AsSpan(q * dim, dim));
            scale = Math.Max(scale, reference.Max(Math.Abs));
            for (int i = 0; i < rows; i++)
            {
                worstPrimal = Math.Max(worstPrimal, Math.Abs(primal[q * rows + i] - reference[i]));
                worstDual = Math.Max(worstDual, Math.Abs(dual[q * rows + i] - reference[i]));
            }
        }
        TestContext.Out.WriteLine($"worst error / largest score: primal {worstPrimal / scale:E2}, dual {worstDual / scale:E2}");
        Assert.That(worstDual, Is.LessThan(1e-6 * scale), "the dual form is float64 up to the final rounding");
        Assert.That(worstPrimal, Is.LessThan(1e-3 * scale), "the primal form goes through a float32 k-vector and a float32 scan");
    }

    [Test]
    public void Finalize_DualForm_WritesAnNByNFactorThatVerifies()
    {
        var dir = MakeStore("s", 12, 64, StoreDType.Float16);

        PreconditionerBuilder.Finalize(dir, 1e-2, form: KernelForm.Dual);

        var path = Path.Combine(dir, StoreFiles.Preconditioner);
        Assert.That(new FileInfo(path).Length, Is.EqualTo(Preconditioner.FileLength(12)));
        var report = StoreVerifier.Verify(dir);
        Assert.That(report.Ok, Is.True, string.Join("; ", report.Checks.Where(c => !c.Ok).Select(c => c.Detail)));
        Assert.That(report.Checks.Single(c => c.Check == "factor").Detail, Does.Contain("dual over N = 12 rows"));
    }

    [Test]
    public void Redamp_OfADualStore_KeepsTheDualForm()
    {
        var dir = MakeStore("s", 10, 40);
        var grams = new GramCache();
        var gram = PreconditionerBuilder.Gram(dir, form: KernelForm.Dual);

        var first = PreconditionerBuilder.Finalize(dir, gram, 1e-1);
        var second = PreconditionerBuilder.Finalize(dir, gram, 1e-3);

        Assert.That((first.Form, second.Form), Is.EqualTo((KernelForm.Dual, KernelForm.Dual)));
        Assert.That(second.Damping, Is.EqualTo(first.Damping / 100).Within(1e-9 * first.Damping));
        Assert.That(grams.For(dir).Form, Is.EqualTo(KernelForm.Primal), "k = 40 ≤ 8192: the automatic choice stays primal");
    }
}
