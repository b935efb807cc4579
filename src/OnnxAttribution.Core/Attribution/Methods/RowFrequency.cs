namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>A training row and the number of queries whose top k it is in.</summary>
public sealed record RowFrequency(long Row, int Queries);
