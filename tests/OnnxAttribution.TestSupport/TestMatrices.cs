namespace OnnxAttribution.TestSupport;

/// <summary>Random matrices for the linear-algebra tests, row-major float64.</summary>
public static class TestMatrices
{
    /// <summary>A random orthogonal n×n matrix (Gram–Schmidt on Gaussian columns, twice for orthogonality to rounding).</summary>
    public static double[] RandomOrthogonal(int n, Random rng)
    {
        var q = new double[n * n];
        for (int i = 0; i < q.Length; i++)
        {
            q[i] = TestRandom.Normal(rng);
        }
        for (int j = 0; j < n; j++)
        {
            for (int pass = 0; pass < 2; pass++)
            {
                for (int k = 0; k < j; k++)
                {
                    double dot = 0;
                    for (int i = 0; i < n; i++)
                    {
                        dot += q[i * n + j] * q[i * n + k];
                    }
                    for (int i = 0; i < n; i++)
                    {
                        q[i * n + j] -= dot * q[i * n + k];
                    }
                }
            }
            double norm = Math.Sqrt(Enumerable.Range(0, n).Sum(i => q[i * n + j] * q[i * n + j]));
            for (int i = 0; i < n; i++)
            {
                q[i * n + j] /= norm;
            }
        }
        return q;
    }

    /// <summary>Q diag(values) Qᵀ in float64.</summary>
    public static double[] Compose(double[] q, double[] values, int n)
    {
        var m = new double[n * n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int k = 0; k < n; k++)
                {
                    s += q[i * n + k] * values[k] * q[j * n + k];
                }
                m[i * n + j] = s;
            }
        }
        return m;
    }
}
