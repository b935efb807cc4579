namespace OnnxAttribution.Core.Attribution;

/// <summary>Spearman rank correlation (Pearson correlation of average ranks, ties sharing their mean rank).</summary>
internal static class RankCorrelation
{
    /// <summary>Spearman correlation of two series: the Pearson correlation of their <see cref="Ranks"/>; 0 when either is constant.</summary>
    /// <exception cref="ArgumentException">The lengths differ or are less than 2.</exception>
    public static double Spearman(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        if (a.Length != b.Length || a.Length < 2)
        {
            throw new ArgumentException($"Spearman needs two series of the same length ≥ 2 (got {a.Length} and {b.Length})");
        }
        return Pearson(Ranks(a), Ranks(b));
    }

    /// <summary>The 1-based rank of each value in ascending order; tied values share their mean rank.</summary>
    public static double[] Ranks(ReadOnlySpan<double> values)
    {
        var order = Enumerable.Range(0, values.Length).ToArray();
        var copy = values.ToArray();
        Array.Sort(copy, order); // copy is now sorted, order[m] the index of its m-th value
        var ranks = new double[values.Length];
        for (int i = 0; i < order.Length;)
        {
            int j = i;
            while (j + 1 < order.Length && copy[j + 1] == copy[i])
            {
                j++;
            }
            double mean = (i + j) / 2.0 + 1;
            for (int m = i; m <= j; m++)
            {
                ranks[order[m]] = mean;
            }
            i = j + 1;
        }
        return ranks;
    }

    /// <summary>Pearson correlation of two series of the same length; 0 when either is constant.</summary>
    public static double Pearson(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        double ma = 0, mb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            ma += a[i];
            mb += b[i];
        }
        ma /= a.Length;
        mb /= b.Length;
        double sab = 0, saa = 0, sbb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            sab += (a[i] - ma) * (b[i] - mb);
            saa += (a[i] - ma) * (a[i] - ma);
            sbb += (b[i] - mb) * (b[i] - mb);
        }
        return saa > 0 && sbb > 0 ? sab / Math.Sqrt(saa * sbb) : 0;
    }
}
