using System.Globalization;
using OnnxAttribution.Store;

namespace OnnxAttribution.Tools;

/// <summary>StoreBench's --int8 part: the read of the 8-bit copy's bytes and TopK through the copy, next to the exact rows' figures.</summary>
internal static class Int8Section
{
    public delegate List<double> Repeater(Action action, double minSeconds, int minRuns, int maxRuns);

    public static unsafe void Run(FeatureStore store, string dir, float[] one, float[] queries, Repeater repeat,
        Func<List<double>, double, double> p, Func<List<double>, double> median, double exactRead, double exactSingle)
    {
        string path = Path.Combine(dir, StoreFiles.QuantizedFeatures);
        var header = NpyFormat.ReadHeader(path);
        double gb = header.DataLength / 1e9;
        using var file = System.IO.MemoryMappedFiles.MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
        using var view = file.CreateViewAccessor(0, 0, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
        byte* start = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
        try
        {
            byte* data = start + view.PointerOffset + header.DataOffset;
            double read = median(repeat(() => ReadBound.SequentialRead(data, header.Rows, header.Columns, asFloat: false), 1.5, 3, 50).Skip(1).ToList());
            store.UseQuantizedRows = false;
            var exact = store.TopK(one, 1, 10)[0];
            store.UseQuantizedRows = true;
            var copy = store.TopK(one, 1, 10)[0];
            bool same = exact.Indices.SequenceEqual(copy.Indices) && exact.Scores.SequenceEqual(copy.Scores);
            var single = repeat(() => store.TopK(one, 1, 10), 1.5, 5, 100000); // warm-up (tiered JIT)
            single = repeat(() => store.TopK(one, 1, 10), 5, 30, 1000);
            var batch = repeat(() => store.TopK(queries, 64, 10), 1.5, 2, 1000);
            batch = repeat(() => store.TopK(queries, 64, 10), 10, 8, 1000);
            single.Sort();
            batch.Sort();
            string F(double ms) => ms.ToString("F1", CultureInfo.InvariantCulture);
            string G(double ms) => (gb / (ms / 1000)).ToString("F1", CultureInfo.InvariantCulture);
            Console.WriteLine($"| {store.Rows:N0} × {store.Dim} | int8 copy + exact re-rank ({store.DType.ToString().ToLowerInvariant()} rows) | {gb:F2} | " +
                $"{F(read)} ({G(read)} GB/s) | {F(p(single, 0.5))} / {F(p(single, 0.99))} ({G(p(single, 0.5))} GB/s) | {single.Count} | " +
                $"{F(p(batch, 0.5))} / {F(p(batch, 0.99))} ({F(p(batch, 0.5) / 64)} per query) | {batch.Count} |");
            Console.WriteLine($"  (1 query p50 / its own read: exact {store.DType.ToString().ToLowerInvariant()} rows {exactSingle / exactRead:F2}×, " +
                $"int8 copy {p(single, 0.5) / read:F2}×; int8 p50 / {store.DType.ToString().ToLowerInvariant()} read {p(single, 0.5) / exactRead:F2}×; " +
                $"the copy's answer {(same ? "equals" : "DIFFERS FROM")} the exact scan's)");
        }
        finally
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
    }

    /// <summary>Peak and current resident memory of this process, anonymous (allocated) and file-backed (mapped pages) apart.</summary>
    public static string Memory()
    {
        var status = File.ReadAllLines("/proc/self/status").Select(l => l.Split(':', 2)).Where(l => l.Length == 2)
            .ToDictionary(l => l[0], l => l[1].Trim());
        string Get(string key) => status.TryGetValue(key, out var v) ? v : "?";
        return $"peak RSS {Get("VmHWM")}, now RssAnon {Get("RssAnon")}, RssFile {Get("RssFile")}";
    }
}
