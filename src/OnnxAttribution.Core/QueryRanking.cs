namespace OnnxAttribution;

/// <summary>The best training rows of one query, best first (ties: lower row first).</summary>
/// <param name="Query">The query's label: a file name, "seed N", or the label the caller gave.</param>
/// <param name="Top">The ranked rows; fewer than asked for when the store has fewer rows.</param>
public sealed record QueryRanking(string Query, IReadOnlyList<RankedRow> Top)
{
    /// <summary>For a class-conditional model, the class label the query was attributed under; null (and left out of JSON) otherwise.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public long? Condition { get; init; }
}
