using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// How concentrated a method's top-k lists are over a set of queries (Xie et al. 2024, Sec. 4, "generally influential"
/// samples): the training rows in the top k of more than <see cref="Fraction"/> of the <see cref="Queries"/> queries.
/// </summary>
/// <param name="Queries">Queries counted.</param>
/// <param name="Top">k of each top-k list.</param>
/// <param name="Fraction">The share of queries a row must exceed to count.</param>
/// <param name="DistinctRows">Rows in at least one top-k list.</param>
/// <param name="Influential">The generally influential rows, most frequent first (ties: lower row first).</param>
/// <param name="MostFrequent">The ten most frequent rows, whatever their share.</param>
public sealed record GenerallyInfluential(int Queries, int Top, double Fraction, int DistinctRows, IReadOnlyList<RowFrequency> Influential, IReadOnlyList<RowFrequency> MostFrequent)
{
    /// <summary>The paper's headline: how many training rows are generally influential.</summary>
    public int Count => Influential.Count;

    /// <summary>Counts, for each row, the top-k lists it is in, and keeps those above <paramref name="fraction"/> of the lists.</summary>
    /// <param name="tops">One top-k list per query.</param>
    /// <param name="fraction">In [0, 1): a row counts when it is in more than fraction × queries lists.</param>
    public static GenerallyInfluential Of(IReadOnlyList<TopKResult> tops, double fraction)
    {
        ArgumentNullException.ThrowIfNull(tops);
        if (!(fraction >= 0 && fraction < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "expected 0 ≤ fraction < 1");
        }
        var counts = new Dictionary<long, int>();
        foreach (var top in tops)
        {
            foreach (long row in top.Indices.Distinct())
            {
                counts[row] = counts.GetValueOrDefault(row) + 1;
            }
        }
        var ranked = counts.Select(kv => new RowFrequency(kv.Key, kv.Value)).OrderByDescending(r => r.Queries).ThenBy(r => r.Row).ToList();
        return new GenerallyInfluential(
            tops.Count,
            tops.Count == 0 ? 0 : tops.Max(t => t.Count),
            fraction,
            counts.Count,
            ranked.Where(r => r.Queries > fraction * tops.Count).ToList(),
            ranked.Take(10).ToList());
    }
}
