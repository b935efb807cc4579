namespace OnnxAttribution.Training.Evaluation;

/// <summary>How an evaluation run tells what it does: one-line notes and progress of named stages.</summary>
public interface IEvaluationObserver
{
    /// <summary>A finished step worth a line (a chosen λ, a method's LDS, the noise ceiling).</summary>
    void Note(string line);

    /// <summary><paramref name="done"/> of <paramref name="total"/> of <paramref name="stage"/>, with a detail (model, loss, speed) or "".</summary>
    void Progress(string stage, long done, long total, string detail);
}
