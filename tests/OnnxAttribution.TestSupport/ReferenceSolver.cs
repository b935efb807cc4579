namespace OnnxAttribution.TestSupport;

/// <summary>A reference for the engine's Cholesky solves: Gaussian elimination with partial pivoting, in float64.</summary>
public static class ReferenceSolver
{
    /// <summary>x with A x = b for a square <paramref name="a"/> (not modified).</summary>
    public static double[] Solve(double[,] a, double[] b)
    {
        int n = b.Length;
        var m = new double[n, n + 1];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                m[i, j] = a[i, j];
            }
            m[i, n] = b[i];
        }
        for (int c = 0; c < n; c++)
        {
            int p = Enumerable.Range(c, n - c).MaxBy(r => Math.Abs(m[r, c]));
            for (int j = 0; j <= n; j++)
            {
                (m[c, j], m[p, j]) = (m[p, j], m[c, j]);
            }
            for (int r = 0; r < n; r++)
            {
                if (r != c)
                {
                    double f = m[r, c] / m[c, c];
                    for (int j = c; j <= n; j++)
                    {
                        m[r, j] -= f * m[c, j];
                    }
                }
            }
        }
        return Enumerable.Range(0, n).Select(i => m[i, n] / m[i, i]).ToArray();
    }
}
