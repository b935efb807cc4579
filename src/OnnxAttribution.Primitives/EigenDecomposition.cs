using System.Numerics.Tensors;

namespace OnnxAttribution.Primitives;

/// <summary>
/// The eigendecomposition M = Q diag(λ) Qᵀ of a real symmetric n×n matrix: eigenvalues in descending order, Q
/// orthogonal with the eigenvectors as its columns (row-major, so eigenvector j is Q[·, j]).
/// </summary>
public sealed record EigenDecomposition(int Dim, double[] Values, double[] Vectors)
{
    /// <summary>Q diag(λ) Qᵀ, row-major n×n (for checks).</summary>
    public double[] Reconstruct()
    {
        int n = Dim;
        var m = new double[(long)n * n];
        var scaled = new double[n];
        for (int i = 0; i < n; i++)
        {
            // Row i of Q·diag(λ), then its dot with every row j of Q.
            TensorPrimitives.Multiply(Vectors.AsSpan(i * n, n), Values, scaled);
            for (int j = 0; j < n; j++)
            {
                m[(long)i * n + j] = TensorPrimitives.Dot<double>(scaled, Vectors.AsSpan(j * n, n));
            }
        }
        return m;
    }
}
