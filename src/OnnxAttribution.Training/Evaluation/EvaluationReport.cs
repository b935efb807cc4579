namespace OnnxAttribution.Training.Evaluation;

/// <summary>What a run wrote: its Markdown table (also saved at <paramref name="MarkdownPath"/>), the result as a JSON-ready object, and a one-line summary.</summary>
public sealed record EvaluationReport(string MarkdownPath, string Table, object Result, string Summary);
