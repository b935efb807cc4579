using OnnxAttribution.Training.Evaluation;

namespace OnnxAttribution.Cli.Verbs;

/// <summary>An evaluation's notes on stderr, one line each, and each stage's progress as its own <see cref="ConsoleProgress"/> line.</summary>
internal sealed class ConsoleEvaluationObserver : IEvaluationObserver
{
    private readonly Dictionary<string, ConsoleProgress> _bars = new(StringComparer.Ordinal);

    public void Note(string line) => Output.Note(line);

    public void Progress(string stage, long done, long total, string detail)
    {
        if (!_bars.TryGetValue(stage, out var bar))
        {
            _bars[stage] = bar = new ConsoleProgress(stage);
        }
        bar.Report(done, total, detail);
    }
}

/// <summary>What the evaluation verbs print: the result as JSON, or its Markdown table and summary line.</summary>
internal static class EvaluationOutput
{
    public static int Print(EvaluationReport report, bool json)
    {
        if (json)
        {
            Output.WriteJson(report.Result);
        }
        else
        {
            Console.Write(report.Table);
            Console.WriteLine(report.Summary);
        }
        return CliApp.Ok;
    }
}
