namespace OnnxAttribution.Training.Evaluation;

/// <summary>An observer that drops everything.</summary>
public sealed class SilentEvaluationObserver : IEvaluationObserver
{
    /// <summary>The one instance.</summary>
    public static SilentEvaluationObserver Instance { get; } = new();

    /// <inheritdoc/>
    public void Note(string line) { }

    /// <inheritdoc/>
    public void Progress(string stage, long done, long total, string detail) { }
}
