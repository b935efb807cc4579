using System.Diagnostics;
using System.Text.Json;

namespace OnnxAttribution.Cli;

/// <summary>Where results and progress go: results on stdout (JSON with --json), progress and notes on stderr.</summary>
internal static class Output
{
    public static void WriteJson<T>(T value) => Console.Out.WriteLine(JsonSerializer.Serialize(value, Runtime.Models.ModelMetadata.JsonOptions));

    public static void Note(string message) => Console.Error.WriteLine(message);
}

/// <summary>
/// Progress on stderr: one line rewritten in place on a terminal, a line every few seconds otherwise (logs, CI).
/// </summary>
internal sealed class ConsoleProgress
{
    private readonly string _label;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly bool _interactive = !Console.IsErrorRedirected;
    private TimeSpan _lastPrinted = TimeSpan.FromSeconds(-10);

    public ConsoleProgress(string label) => _label = label;

    /// <summary>Reports <paramref name="done"/> of <paramref name="total"/>, with an estimate of the time left.</summary>
    /// <param name="done">Work done.</param>
    /// <param name="total">Work in total.</param>
    /// <param name="detail">Shown after the counts.</param>
    /// <param name="remaining">The caller's estimate of the time left (e.g. a resumed job, whose done work took no time
    /// here); null to extrapolate from this process's elapsed time.</param>
    public void Report(long done, long total, string detail = "", TimeSpan? remaining = null)
    {
        var now = _clock.Elapsed;
        bool last = done >= total;
        if (!last && now - _lastPrinted < TimeSpan.FromSeconds(_interactive ? 0.2 : 5))
        {
            return;
        }
        _lastPrinted = now;
        double fraction = total > 0 ? (double)done / total : 1;
        string eta = done > 0 && !last ? $", ~{Format(remaining ?? TimeSpan.FromSeconds(now.TotalSeconds / done * (total - done)))} left" : "";
        string line = $"{_label}: {done}/{total} ({fraction:P0}) {detail} [{Format(now)}{eta}]";
        if (_interactive)
        {
            Console.Error.Write("\r" + line.PadRight(Math.Min(Console.WindowWidth > 0 ? Console.WindowWidth - 1 : 100, 160)));
            if (last)
            {
                Console.Error.WriteLine();
            }
        }
        else
        {
            Console.Error.WriteLine(line);
        }
    }

    private static string Format(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:D2}m" : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m{t.Seconds:D2}s" : $"{t.TotalSeconds:F1}s";
}
