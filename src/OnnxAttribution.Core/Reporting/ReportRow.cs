namespace OnnxAttribution.Core.Reporting;

/// <summary>One training row among a report's top rows, with its standing among all rows' scores of the query.</summary>
/// <param name="Rank">1 for the highest score.</param>
/// <param name="Index">The row: the training image's index in the store's dataset.</param>
/// <param name="Score">The method's score.</param>
/// <param name="Label">The training image's class label where the dataset has labels; null otherwise.</param>
/// <param name="ZScore">(score − mean) / std over all N rows' scores of the query.</param>
/// <param name="Percentile">The percentage of all N rows scoring at most this row's score.</param>
public sealed record ReportRow(int Rank, long Index, float Score,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] int? Label,
    double ZScore, double Percentile);
