namespace OnnxAttribution;

/// <summary>The best training rows of one query, best first (ties: lower row first).</summary>
/// <param name="Query">The query's label: a file name, "seed N", or the label the caller gave.</param>
/// <param name="Top">The ranked rows; fewer than asked for when the store has fewer rows.</param>
public sealed record QueryRanking(string Query, IReadOnlyList<RankedRow> Top)
{
    /// <summary>For a conditional model, the condition value the query was attributed under (a class label, or a text model's
    /// packed prompt); null (and left out of JSON) otherwise.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public long? Condition { get; init; }

    /// <summary>For a text-conditioned model, the prompt the query was attributed under, in words; null (and left out of JSON) otherwise.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Prompt { get; init; }
}
