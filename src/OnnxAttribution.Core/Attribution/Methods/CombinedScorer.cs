using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// Several methods' stores of one training set scored as one: per query, each method's scores standardised over the rows
/// (mean 0, deviation 1) and averaged with equal weights — what <c>lds --combinations</c> evaluates, e.g. D-TRAK + K-FAC +
/// DAS. Owns the scorers it combines.
/// </summary>
public sealed class CombinedScorer : IAttributionScorer
{
    private readonly IReadOnlyList<IAttributionScorer> _scorers;

    /// <summary>Combines <paramref name="scorers"/> (two or more, of the same rows; disposed with this one).</summary>
    /// <exception cref="UserInputException">Fewer than two, or they score different numbers of rows.</exception>
    public CombinedScorer(IReadOnlyList<IAttributionScorer> scorers)
    {
        ArgumentNullException.ThrowIfNull(scorers);
        if (scorers.Count < 2)
        {
            throw new UserInputException($"a combination needs two or more methods' stores; got {scorers.Count}");
        }
        if (scorers.FirstOrDefault(s => s.Rows != scorers[0].Rows) is { } other)
        {
            throw new UserInputException($"method {other.Method}'s store scores {other.Rows} rows and {scorers[0].Method}'s {scorers[0].Rows}: " +
                "a combination scores one training set");
        }
        _scorers = scorers;
    }

    /// <inheritdoc/>
    public string Method => string.Join("+", _scorers.Select(s => s.Method));

    /// <inheritdoc/>
    public long Rows => _scorers[0].Rows;

    /// <inheritdoc/>
    public float[] Scores(IReadOnlyList<AttributionQuery> queries, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        int rows = checked((int)Rows);
        var sum = new float[queries.Count * rows];
        foreach (var scorer in _scorers)
        {
            AddStandardised(scorer.Scores(queries, cancel), queries.Count, rows, 1.0 / _scorers.Count, sum);
        }
        return sum;
    }

    /// <summary>
    /// <paramref name="sum"/>[q, r] += weight · (scores[q, r] − mean_q) / deviation_q, the mean and deviation over the rows of
    /// query q (a query whose scores are all equal adds nothing). The one arithmetic of combinations, here and in the LDS.
    /// </summary>
    public static void AddStandardised(ReadOnlySpan<float> scores, int queries, int rows, double weight, Span<float> sum)
    {
        for (int q = 0; q < queries; q++)
        {
            var row = scores.Slice(q * rows, rows);
            double mean = 0, square = 0;
            foreach (float v in row)
            {
                mean += v;
            }
            mean /= rows;
            foreach (float v in row)
            {
                square += (v - mean) * (v - mean);
            }
            double scale = square > 0 ? weight / Math.Sqrt(square / rows) : 0;
            for (int r = 0; r < rows; r++)
            {
                sum[(q * rows) + r] += (float)((row[r] - mean) * scale);
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var scorer in _scorers)
        {
            scorer.Dispose();
        }
    }
}
