using System.Diagnostics;

namespace OnnxAttribution.Server;

/// <summary>
/// Picks up new versions of the served stores without a restart: every interval it reads each store folder's version
/// (<see cref="StoreSlot.VersionKey"/>); when it changed, it opens and warms up the new version beside the old one and swaps
/// it in (<see cref="StoreSlot.Replace"/>). A version that fails to open is logged and left alone until the folder changes
/// again; the old version keeps answering meanwhile. Cluster stores are not watched (their shards live in the silos).
/// </summary>
internal sealed class StoreWatcher(IReadOnlyCollection<StoreSlot> slots, Func<StoreSpec, ServedStore> open, ILogger log, TimeSpan interval)
{
    private readonly Dictionary<string, string> _failed = new(StringComparer.Ordinal);

    /// <summary>Checks every interval until <paramref name="stop"/>; returns at once when the interval is zero.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        if (interval <= TimeSpan.Zero)
        {
            return;
        }
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                CheckOnce(stop);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    /// <summary>One round: swaps in every store whose folder has a new version.</summary>
    public void CheckOnce(CancellationToken stop = default)
    {
        foreach (var slot in slots.Where(s => !s.Spec.Cluster))
        {
            stop.ThrowIfCancellationRequested();
            string key = StoreSlot.VersionKey(slot.Spec.Directory);
            if (key == slot.Version || (_failed.TryGetValue(slot.Spec.Name, out var failed) && failed == key))
            {
                continue;
            }
            var clock = Stopwatch.StartNew();
            ServedStore? next = null;
            try
            {
                next = open(slot.Spec);
                next.WarmUp(stop);
                slot.Replace(next, key);
                _failed.Remove(slot.Spec.Name);
                var i = next.Info;
                log.LogInformation("store '{Name}': version {Version} ({Id}) picked up, {Rows} rows; opened and warmed up in {Ms:F0} ms beside the old one",
                    i.Name, i.Version?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-", i.VersionId ?? key, i.Rows, clock.Elapsed.TotalMilliseconds);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                next?.Dispose();
                _failed[slot.Spec.Name] = key;
                log.LogWarning("store '{Name}': its folder changed, but the new version cannot be opened ({Error}); still serving the old one",
                    slot.Spec.Name, e.Message);
            }
        }
    }
}
