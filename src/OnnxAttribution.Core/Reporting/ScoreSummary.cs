namespace OnnxAttribution.Core.Reporting;

/// <summary>
/// The distribution of one query's scores over all N training rows, against which each top row's score is read (the
/// report's trust column): its z-score and its percentile.
/// </summary>
/// <param name="Rows">N, the rows scored.</param>
/// <param name="Mean">The mean score.</param>
/// <param name="Std">The population standard deviation of the scores (divided by N).</param>
/// <param name="Min">The lowest score.</param>
/// <param name="Max">The highest score.</param>
/// <remarks>
/// Sums run in double precision. With a standard deviation of zero (all rows scored alike) every z-score is 0: no row
/// stands out. See docs/methods.md, "The report's trust column".
/// </remarks>
public sealed record ScoreSummary(long Rows, double Mean, double Std, double Min, double Max)
{
    /// <summary>Summarises a query's scores.</summary>
    /// <param name="scores">The scores of all N rows (finite).</param>
    /// <exception cref="ArgumentException">There are no scores, or one is NaN or infinite.</exception>
    public static ScoreSummary Of(ReadOnlySpan<float> scores)
    {
        if (scores.IsEmpty)
        {
            throw new ArgumentException("no scores to summarise", nameof(scores));
        }
        double sum = 0, min = double.PositiveInfinity, max = double.NegativeInfinity;
        foreach (float s in scores)
        {
            if (!float.IsFinite(s))
            {
                throw new ArgumentException($"a score is {s}; the store or its model holds non-finite values", nameof(scores));
            }
            sum += s;
            min = Math.Min(min, s);
            max = Math.Max(max, s);
        }
        double mean = sum / scores.Length, squares = 0;
        foreach (float s in scores)
        {
            squares += (s - mean) * (s - mean);
        }
        return new ScoreSummary(scores.Length, mean, Math.Sqrt(squares / scores.Length), min, max);
    }

    /// <summary>(score − mean) / std; 0 when every row scored the same.</summary>
    /// <param name="score">A score of the same query.</param>
    public double ZScore(float score) => Std > 0 ? (score - Mean) / Std : 0;

    /// <summary>The percentage of the rows whose score is at most <paramref name="score"/> (100 for the best row).</summary>
    /// <param name="scores">The same scores as summarised.</param>
    /// <param name="score">A score of the same query.</param>
    /// <exception cref="ArgumentException"><paramref name="scores"/> is empty.</exception>
    public static double Percentile(ReadOnlySpan<float> scores, float score)
    {
        if (scores.IsEmpty)
        {
            throw new ArgumentException("no scores", nameof(scores));
        }
        long atMost = 0;
        foreach (float s in scores)
        {
            if (s <= score)
            {
                atMost++;
            }
        }
        return 100.0 * atMost / scores.Length;
    }
}
