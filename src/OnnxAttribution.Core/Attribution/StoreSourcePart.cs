namespace OnnxAttribution.Core.Attribution;

/// <summary>Rows that <c>append</c> added to a store: the dataset and subset as the user named them (<see cref="StoreSource.Appended"/>).</summary>
/// <param name="Data">The dataset: a name or a path.</param>
/// <param name="Subset">Which of its images, in the subset syntax of <c>featurize --subset</c>.</param>
/// <param name="Rows">How many rows they are.</param>
public sealed record StoreSourcePart(string Data, string Subset, long Rows);
