using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Evaluation;

/// <summary>
/// How much of an LDS benchmark's measured output any attribution could predict: each subset is trained with S seeds,
/// the seeds are split into halves A and B of h = ⌊S/2⌋ seeds each, and per query ρ_half is the Spearman correlation over
/// subsets between the mean loss over A and the mean loss over B. Spearman–Brown with lengthening factor n = S/h
/// (2 for even S) gives ρ_S = nρ_half / (1 + (n − 1)ρ_half), the reliability of the S-seed mean; the ceiling is √ρ_S.
/// </summary>
/// <remarks>
/// For odd S one seed sits out of each split (S = 3: three splits of one seed against one, n = 3). Every distinct split
/// is averaged when there are at most <c>maxSplits</c> of them (S ≤ 8 with the default), otherwise that many drawn at
/// random; ρ_half is averaged over the splits before Spearman–Brown is applied.
/// </remarks>
public static class NoiseCeiling
{
    /// <summary>The general Spearman–Brown formula nρ / (1 + (n − 1)ρ), clamped to [−1, 1]; NaN stays NaN.</summary>
    /// <param name="rho">The reliability (correlation) of one part.</param>
    /// <param name="factor">n: how many parts the whole holds.</param>
    public static double SpearmanBrown(double rho, double factor)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(factor, 1.0);
        if (double.IsNaN(rho))
        {
            return double.NaN;
        }
        double denominator = 1 + ((factor - 1) * rho);
        return denominator <= 0 ? -1 : Math.Clamp(factor * rho / denominator, -1, 1);
    }

    /// <summary>
    /// The splits of <paramref name="seeds"/> seeds into two disjoint halves of ⌊S/2⌋: all distinct unordered splits
    /// (in lexicographic order of A, then B, with A before B) when there are at most <paramref name="maxSplits"/>, else
    /// <paramref name="maxSplits"/> random ones drawn with <paramref name="seed"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Fewer than 2 seeds.</exception>
    public static IReadOnlyList<SeedSplit> Splits(int seeds, int maxSplits = 100, long seed = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(seeds, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSplits, 1);
        int h = seeds / 2;
        var halves = Combinations(seeds, h).ToList();
        var all = new List<SeedSplit>();
        for (int a = 0; a < halves.Count; a++)
        {
            for (int b = a + 1; b < halves.Count; b++)
            {
                if (!halves[a].Intersect(halves[b]).Any())
                {
                    all.Add(new SeedSplit(halves[a], halves[b]));
                }
            }
        }
        if (all.Count <= maxSplits)
        {
            return all;
        }
        var u = new double[all.Count];
        new CounterRng(seed, 0).FillUniform(u);
        return all.Select((s, i) => (s, u[i])).OrderBy(x => x.Item2).Take(maxSplits).Select(x => x.s).ToList();
    }

    private static IEnumerable<int[]> Combinations(int n, int k)
    {
        var pick = Enumerable.Range(0, k).ToArray();
        while (true)
        {
            yield return (int[])pick.Clone();
            int i = k - 1;
            while (i >= 0 && pick[i] == n - k + i)
            {
                i--;
            }
            if (i < 0)
            {
                yield break;
            }
            pick[i]++;
            for (int j = i + 1; j < k; j++)
            {
                pick[j] = pick[j - 1] + 1;
            }
        }
    }

    /// <summary>The noise ceiling of measured losses from S ≥ 2 seeds per subset.</summary>
    /// <param name="perSeed">One models × queries loss matrix (model-major) per seed.</param>
    /// <param name="models">M.</param>
    /// <param name="queries">Number of queries.</param>
    /// <param name="maxSplits">At most this many seed splits (see <see cref="Splits"/>).</param>
    /// <param name="seed">Seed of the random splits (when there are too many to take all) and of the bootstrap.</param>
    /// <exception cref="ArgumentException">Fewer than 2 seeds, or a matrix of the wrong size.</exception>
    public static CeilingResult Measure(IReadOnlyList<double[]> perSeed, int models, int queries, int maxSplits = 100, long seed = 0)
    {
        ArgumentNullException.ThrowIfNull(perSeed);
        if (perSeed.Count < 2)
        {
            throw new ArgumentException($"the noise ceiling needs at least 2 seeds per subset, got {perSeed.Count}");
        }
        if (perSeed.Any(m => m.Length != (long)models * queries))
        {
            throw new ArgumentException($"every seed's matrix must hold {models} models × {queries} queries");
        }
        var splits = Splits(perSeed.Count, maxSplits, seed);
        int h = splits[0].A.Length;
        var half = new double[queries];
        var counts = new int[queries];
        var a = new double[models];
        var b = new double[models];
        foreach (var split in splits)
        {
            for (int q = 0; q < queries; q++)
            {
                for (int j = 0; j < models; j++)
                {
                    a[j] = split.A.Average(s => perSeed[s][(j * queries) + q]);
                    b[j] = split.B.Average(s => perSeed[s][(j * queries) + q]);
                }
                double rho = RankCorrelation.Spearman(a, b);
                if (double.IsFinite(rho))
                {
                    half[q] += rho;
                    counts[q]++;
                }
            }
        }
        double factor = (double)perSeed.Count / h;
        var halfMean = half.Select((v, q) => counts[q] == 0 ? double.NaN : v / counts[q]).ToArray();
        var reliability = halfMean.Select(r => SpearmanBrown(r, factor)).ToArray();
        var ceiling = reliability.Select(r => double.IsNaN(r) ? double.NaN : Math.Sqrt(Math.Max(r, 0))).ToArray();
        return new CeilingResult(halfMean, reliability, ceiling, Lds.Bootstrap(ceiling, 2000, seed), Lds.Bootstrap(reliability, 2000, seed), splits.Count, h);
    }

    /// <summary>The mean over seeds of models × queries matrices: each query's measured output averaged over the S seeds.</summary>
    public static double[] MeanOverSeeds(IReadOnlyList<double[]> perSeed)
    {
        ArgumentNullException.ThrowIfNull(perSeed);
        if (perSeed.Count == 0 || perSeed.Any(m => m.Length != perSeed[0].Length))
        {
            throw new ArgumentException("at least one seed, every matrix the same size");
        }
        var mean = new double[perSeed[0].Length];
        foreach (var m in perSeed)
        {
            for (int i = 0; i < mean.Length; i++)
            {
                mean[i] += m[i];
            }
        }
        for (int i = 0; i < mean.Length; i++)
        {
            mean[i] /= perSeed.Count;
        }
        return mean;
    }
}
