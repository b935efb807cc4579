using OnnxAttribution.Store;

namespace OnnxAttribution.Cli.Verbs;

/// <summary>What append and remove print: the version they wrote.</summary>
internal static class StoreVersionOutput
{
    public static void Write(string store, StoreVersion version, double seconds, bool json)
    {
        if (json)
        {
            Output.WriteJson(new { store, version, seconds });
            return;
        }
        Console.WriteLine($"store {store}: version {version.Number} ({version.Change}) {version.Id![..16]}…, {version.LiveRows} of {version.Rows} rows answered; {seconds:F1} s");
    }

    /// <summary>One line per version, oldest first.</summary>
    public static void WriteHistory(StoreHistory history)
    {
        foreach (var v in history.Versions)
        {
            string rows = v.AddedRows is [var first, var end] ? $"; added {first}–{end - 1}" : "";
            rows += v.RemovedRows is { Count: > 0 } removed ? $"; removed {string.Join(",", removed.Take(10))}{(removed.Count > 10 ? ",…" : "")}" : "";
            string why = v.Reason is null ? "" : $" — \"{v.Reason}\"";
            Console.WriteLine($"v{v.Number,-3} {v.Time:yyyy-MM-dd HH:mm:ss}Z {v.Change,-9} {v.Id![..12]}  {v.LiveRows}/{v.Rows} rows{rows}; by {v.By}{why}");
        }
    }
}
