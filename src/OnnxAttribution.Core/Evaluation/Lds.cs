using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Evaluation;

/// <summary>
/// The Linear Datamodeling Score (Park et al. 2023, Def. 5; the diffusion setting of Zheng et al. 2024, Sec. 2):
/// M random subsets S_j of size αN, one model per subset; for a query q the predicted output of model j is
/// Σ_{i∈S_j} τ(q)ᵢ and the measured output is its diffusion loss; LDS(q) is the Spearman correlation over j.
/// </summary>
/// <remarks>
/// Scores follow the engine's sign convention (positive = supports the query, i.e. lowers its loss), so the predicted
/// output is correlated with the negated loss: a perfect attribution has LDS 1.
/// </remarks>
public static class Lds
{
    /// <summary>
    /// M subsets of ⌊αN⌋ distinct rows, each sorted; subset j is a seeded partial Fisher–Yates shuffle on stream j of
    /// <see cref="CounterRng"/>, so subset j does not depend on M.
    /// </summary>
    public static int[][] DrawSubsets(int rows, int models, double alpha, long seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(models, 1);
        if (!(alpha > 0 && alpha < 1))
        {
            throw new SettingException("Alpha", alpha, "the subset fraction must be strictly between 0 and 1");
        }
        int size = Math.Max(1, (int)Math.Floor(alpha * rows));
        var subsets = new int[models][];
        var uniform = new double[size];
        for (int j = 0; j < models; j++)
        {
            var order = Enumerable.Range(0, rows).ToArray();
            new CounterRng(seed, j).FillUniform(uniform);
            for (int i = 0; i < size; i++)
            {
                int pick = i + (int)Math.Min(rows - i - 1, Math.Floor(uniform[i] * (rows - i)));
                (order[i], order[pick]) = (order[pick], order[i]);
            }
            subsets[j] = order.Take(size).Order().ToArray();
        }
        return subsets;
    }

    /// <summary>Predicted outputs Σ_{i∈S_j} τ(q)ᵢ: <c>queries × subsets.Count</c>, query-major.</summary>
    /// <param name="scores">queries × rows scores, query-major.</param>
    /// <param name="queries">Number of queries.</param>
    /// <param name="rows">N.</param>
    /// <param name="subsets">The subsets' row indices.</param>
    public static double[] Predict(ReadOnlySpan<float> scores, int queries, int rows, IReadOnlyList<int[]> subsets)
    {
        ArgumentNullException.ThrowIfNull(subsets);
        if (scores.Length != (long)queries * rows)
        {
            throw new ArgumentException($"{queries} queries × {rows} rows need {(long)queries * rows} scores, got {scores.Length}");
        }
        var predicted = new double[queries * subsets.Count];
        for (int q = 0; q < queries; q++)
        {
            var row = scores.Slice(q * rows, rows);
            for (int j = 0; j < subsets.Count; j++)
            {
                double sum = 0;
                foreach (int i in subsets[j])
                {
                    sum += row[i];
                }
                predicted[q * subsets.Count + j] = sum;
            }
        }
        return predicted;
    }

    /// <summary>
    /// The scores less each training example's mean score over the queries: what in a method's scores is specific to a
    /// query. A diagnostic of scores dominated by a query-independent part (generally influential examples).
    /// </summary>
    /// <param name="scores">queries × rows, query-major.</param>
    /// <param name="queries">Number of queries.</param>
    /// <param name="rows">N.</param>
    public static float[] RemoveQueryMean(ReadOnlySpan<float> scores, int queries, int rows)
    {
        if (scores.Length != (long)queries * rows)
        {
            throw new ArgumentException($"{queries} queries × {rows} rows need {(long)queries * rows} scores, got {scores.Length}");
        }
        var mean = new double[rows];
        for (int q = 0; q < queries; q++)
        {
            for (int i = 0; i < rows; i++)
            {
                mean[i] += scores[q * rows + i];
            }
        }
        var result = new float[scores.Length];
        for (int q = 0; q < queries; q++)
        {
            for (int i = 0; i < rows; i++)
            {
                result[q * rows + i] = (float)(scores[q * rows + i] - (mean[i] / queries));
            }
        }
        return result;
    }

    /// <summary>
    /// The mean Spearman correlation between the score rows of every pair of queries: near 0 when a method ranks the
    /// training set differently for each query, near 1 when it gives every query the same ranking. A diagnostic.
    /// </summary>
    /// <param name="scores">queries × rows, query-major.</param>
    /// <param name="queries">Number of queries (at least 2 for a finite result).</param>
    /// <param name="rows">N.</param>
    public static double QueryAgreement(ReadOnlySpan<float> scores, int queries, int rows)
    {
        if (scores.Length != (long)queries * rows)
        {
            throw new ArgumentException($"{queries} queries × {rows} rows need {(long)queries * rows} scores, got {scores.Length}");
        }
        var copy = scores.ToArray();
        var rowsOf = Enumerable.Range(0, queries).Select(q => copy.AsSpan(q * rows, rows).ToArray().Select(v => (double)v).ToArray()).ToArray();
        double sum = 0;
        int pairs = 0;
        for (int a = 0; a < queries; a++)
        {
            for (int b = a + 1; b < queries; b++)
            {
                double rho = RankCorrelation.Spearman(rowsOf[a], rowsOf[b]);
                if (double.IsFinite(rho))
                {
                    sum += rho;
                    pairs++;
                }
            }
        }
        return pairs == 0 ? double.NaN : sum / pairs;
    }

    /// <summary>
    /// LDS of each query: Spearman over models between the predicted outputs and the negated measured losses.
    /// NaN where either side is constant.
    /// </summary>
    /// <param name="predicted">queries × models, from <see cref="Predict"/>.</param>
    /// <param name="measuredLoss">models × queries measured diffusion losses, model-major (as the models are evaluated).</param>
    /// <param name="queries">Number of queries.</param>
    /// <param name="models">M.</param>
    public static double[] PerQuery(ReadOnlySpan<double> predicted, ReadOnlySpan<double> measuredLoss, int queries, int models)
    {
        if (predicted.Length != queries * models || measuredLoss.Length != queries * models)
        {
            throw new ArgumentException($"{queries} queries × {models} models: predicted has {predicted.Length} values, measured {measuredLoss.Length}");
        }
        var result = new double[queries];
        var y = new double[models];
        for (int q = 0; q < queries; q++)
        {
            for (int j = 0; j < models; j++)
            {
                y[j] = -measuredLoss[j * queries + q];
            }
            result[q] = RankCorrelation.Spearman(predicted.Slice(q * models, models), y);
        }
        return result;
    }

    /// <summary>The mean of the finite values with a percentile bootstrap 95% interval (seeded resamples).</summary>
    public static Interval Bootstrap(ReadOnlySpan<double> values, int resamples = 2000, long seed = 0)
    {
        var finite = values.ToArray().Where(double.IsFinite).ToArray();
        if (finite.Length == 0)
        {
            return new Interval(double.NaN, double.NaN, double.NaN, 0);
        }
        double mean = finite.Average();
        var means = new double[resamples];
        var u = new double[finite.Length];
        for (int r = 0; r < resamples; r++)
        {
            new CounterRng(seed, r).FillUniform(u);
            double s = 0;
            for (int i = 0; i < finite.Length; i++)
            {
                s += finite[Math.Min(finite.Length - 1, (int)(u[i] * finite.Length))];
            }
            means[r] = s / finite.Length;
        }
        Array.Sort(means);
        return new Interval(mean, Percentile(means, 0.025), Percentile(means, 0.975), finite.Length);
    }

    /// <summary>
    /// How often the mean LDS would reach the observed one if the subsets told nothing about the models: the measured
    /// losses of the M models are permuted among the subsets, with one permutation for every query at once.
    /// </summary>
    /// <remarks>
    /// The bootstrap interval of <see cref="Bootstrap"/> treats queries as independent. They are not when a method gives
    /// every query much the same scores (TracIn's "generally influential" examples): then the per-query LDS values move
    /// together and that interval is too narrow. Permuting models for all queries together keeps the dependence between
    /// queries, so this null is the fair test of "above random".
    /// </remarks>
    /// <param name="predicted">queries × models, from <see cref="Predict"/>.</param>
    /// <param name="measuredLoss">models × queries, model-major.</param>
    /// <param name="queries">Number of queries.</param>
    /// <param name="models">M.</param>
    /// <param name="permutations">Number of random permutations.</param>
    /// <param name="seed">Seed of the permutations.</param>
    public static PermutationResult PermutationTest(ReadOnlySpan<double> predicted, ReadOnlySpan<double> measuredLoss, int queries, int models, int permutations = 1000, long seed = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(permutations, 1);
        double observed = MeanFinite(PerQuery(predicted, measuredLoss, queries, models));
        var permuted = new double[measuredLoss.Length];
        var order = new int[models];
        var u = new double[models];
        var means = new double[permutations];
        int atLeast = 0;
        for (int r = 0; r < permutations; r++)
        {
            new CounterRng(seed, r).FillUniform(u);
            for (int j = 0; j < models; j++)
            {
                order[j] = j;
            }
            for (int j = models - 1; j > 0; j--)
            {
                int pick = (int)Math.Min(j, Math.Floor(u[j] * (j + 1)));
                (order[j], order[pick]) = (order[pick], order[j]);
            }
            for (int j = 0; j < models; j++)
            {
                measuredLoss.Slice(order[j] * queries, queries).CopyTo(permuted.AsSpan(j * queries, queries));
            }
            means[r] = MeanFinite(PerQuery(predicted, permuted, queries, models));
            if (means[r] >= observed)
            {
                atLeast++;
            }
        }
        Array.Sort(means);
        return new PermutationResult((1.0 + atLeast) / (1.0 + permutations), Percentile(means, 0.025), Percentile(means, 0.975), permutations);
    }

    private static double MeanFinite(double[] values)
    {
        var finite = values.Where(double.IsFinite).ToArray();
        return finite.Length == 0 ? double.NaN : finite.Average();
    }

    private static double Percentile(double[] sorted, double p)
    {
        double pos = p * (sorted.Length - 1);
        int lo = (int)Math.Floor(pos);
        int hi = Math.Min(sorted.Length - 1, lo + 1);
        return sorted[lo] + ((pos - lo) * (sorted[hi] - sorted[lo]));
    }
}
