using System.Numerics.Tensors;
using OnnxAttribution.Primitives;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// TRAK's kernel in the dual form, for stores with fewer rows than features: ΦΦᵀ (N × N) instead of ΦᵀΦ (k × k), and a
/// query's scores τ = (ΦΦᵀ + λI)⁻¹ Φ φ_q. Everything is computed in float64 from the stored rows: the N × N system is
/// solved on Φφ_q itself, so no float32 k-vector stands between the solve and the scores.
/// </summary>
internal static class DualKernel
{
    /// <summary>The most rows whose N × N kernel fits in one array (N² ≤ <see cref="Array.MaxLength"/>).</summary>
    public const int MaxRows = 46_340;

    /// <summary>The store's row count as the order of its dual kernel.</summary>
    /// <exception cref="UserInputException">The store has more rows than <see cref="MaxRows"/>.</exception>
    public static int RequireRows(FeatureStore store)
    {
        if (store.Rows > MaxRows || store.Rows < 1)
        {
            throw new UserInputException($"{store.Directory}: {store.Rows} rows; the dual kernel form factors an N × N matrix of 1 to {MaxRows} rows: use the primal form");
        }
        return (int)store.Rows;
    }

    /// <summary>ΦΦᵀ in float64 (lower triangle, row-major N × N), from the store's rows held in memory as float64.</summary>
    /// <exception cref="UserInputException">The store is too large for the dual form (rows, or N × k float64 values in memory).</exception>
    /// <exception cref="StoreFormatException">A feature is NaN or infinite (the message names the row and column).</exception>
    public static Preconditioner.GramAccumulator Gram(FeatureStore store, IProgress<(long Done, long Total)>? progress)
    {
        int n = RequireRows(store);
        int k = store.Dim;
        var rows = ReadAll(store, n, progress);
        var kernel = new double[(long)n * n];
        Parallel.For(0, n, i =>
        {
            var ri = rows.AsSpan((int)((long)i * k), k);
            for (int j = 0; j <= i; j++)
            {
                kernel[((long)i * n) + j] = TensorPrimitives.Dot<double>(ri, rows.AsSpan((int)((long)j * k), k));
            }
        });
        return Preconditioner.GramAccumulator.Dual(kernel, n, k);
    }

    /// <summary>Every row of the store as float64, N × k row-major, each checked finite.</summary>
    private static double[] ReadAll(FeatureStore store, int n, IProgress<(long Done, long Total)>? progress)
    {
        int k = store.Dim;
        long values = (long)n * k;
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (values > Array.MaxLength || values * sizeof(double) > available / 2)
        {
            throw new UserInputException($"{store.Directory}: the dual kernel form holds the store's {n} × {k} features as float64 " +
                $"({values * sizeof(double) / 1048576.0:F0} MiB) and this process may use {available / 1048576.0:F0} MiB: use the primal form");
        }
        var all = GC.AllocateUninitializedArray<double>((int)values);
        var row = new float[k];
        for (int i = 0; i < n; i++)
        {
            store.ReadRow(store.FirstRow + i, row);
            PreconditionerBuilder.RequireFinite(store, store.FirstRow + i, row);
            var destination = all.AsSpan((int)((long)i * k), k);
            for (int j = 0; j < k; j++)
            {
                destination[j] = row[j];
            }
            if ((i & 255) == 255 || i == n - 1)
            {
                progress?.Report((i + 1, n));
            }
        }
        return all;
    }

    /// <summary>
    /// scores[q·N + i] = τ_q[i] = ((ΦΦᵀ + λI)⁻¹ Φ φ_q)[i] for <paramref name="count"/> query feature rows: Φφ_q in float64
    /// over the stored rows, then the N × N solve.
    /// </summary>
    public static void Scores(FeatureStore store, Preconditioner dual, ReadOnlySpan<float> queries, int count, Span<float> scores)
    {
        int n = dual.Order;
        int k = store.Dim;
        if (store.Rows != n || queries.Length != (long)count * k || scores.Length != (long)count * n)
        {
            throw new ArgumentException($"a dual kernel over {n} rows of {k}: expected {count} × {k} query values and {count} × {n} scores; " +
                $"the store has {store.Rows} rows, got {queries.Length} and {scores.Length}");
        }
        var q = new double[queries.Length];
        for (int i = 0; i < q.Length; i++)
        {
            q[i] = queries[i];
        }
        var projected = new double[(long)count * n];
        Parallel.For(0, n, () => (new float[k], new double[k]), (i, _, buffers) =>
        {
            store.ReadRow(store.FirstRow + i, buffers.Item1);
            for (int j = 0; j < k; j++)
            {
                buffers.Item2[j] = buffers.Item1[j];
            }
            for (int c = 0; c < count; c++)
            {
                projected[((long)c * n) + i] = TensorPrimitives.Dot<double>(buffers.Item2, q.AsSpan(c * k, k));
            }
            return buffers;
        }, _ => { });
        for (int c = 0; c < count; c++)
        {
            var tau = projected.AsSpan(c * n, n);
            dual.SolveDual(tau);
            for (int i = 0; i < n; i++)
            {
                scores[(c * n) + i] = (float)tau[i];
            }
        }
    }
}
