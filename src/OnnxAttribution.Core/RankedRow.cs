namespace OnnxAttribution;

/// <summary>
/// One training row in a query's ranking: the one result shape of the library, the CLI's and the edge tool's
/// <c>--json</c> and the HTTP server (<c>rankings[].top[]</c>).
/// </summary>
/// <param name="Rank">1 for the row with the highest score.</param>
/// <param name="Index">The row: index of the training image in the store's dataset.</param>
/// <param name="Score">The method's score (positive: training on the row is predicted to make the query more likely).</param>
/// <param name="Label">The training image's class label where the dataset has labels and they were read; null (and left
/// out of JSON) otherwise.</param>
public sealed record RankedRow(int Rank, long Index, float Score,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] int? Label = null)
{
    /// <summary>For a text-conditioned model, the caption the row was featurized under ("a dark sneaker"); null (left out of JSON) otherwise.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Caption { get; init; }
}
