using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// One attribution method opened on its method store, answering queries with a score for every training row.
/// </summary>
/// <remarks>
/// Sign convention, the same for every method: a positive score says that training on the example is predicted to make
/// the query more likely (lower its diffusion loss); the LDS correlates summed scores with the negated measured loss.
/// </remarks>
public interface IAttributionScorer : IDisposable
{
    /// <summary>The method's name as the CLI spells it (e.g. "d-trak").</summary>
    string Method { get; }

    /// <summary>N, the number of training rows scored.</summary>
    long Rows { get; }

    /// <summary>Every row's score for each query: <c>queries.Count × Rows</c> values, query-major.</summary>
    float[] Scores(IReadOnlyList<AttributionQuery> queries, CancellationToken cancel = default);

    /// <summary>The <paramref name="top"/> best rows of each query (ties: lower row first).</summary>
    TopKResult[] TopK(IReadOnlyList<AttributionQuery> queries, int top, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var scores = Scores(queries, cancel);
        return Enumerable.Range(0, queries.Count).Select(q => TopKSelection.Select(scores.AsSpan(checked((int)(q * Rows)), checked((int)Rows)), top)).ToArray();
    }
}
