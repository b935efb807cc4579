using System.Text;
using System.Text.Json;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Store;

/// <summary>
/// Replaces several files of a store as one step, so a process killed at any point leaves either the previous version or
/// the next, never a mix. The next version's files are written into the staging folder <see cref="StoreFiles.Staging"/>;
/// <see cref="Commit"/> writes the list of files to move (<see cref="Marker"/>) — from then on the change is decided — and
/// renames them over the store's. Whoever opens the store next finishes a commit that a kill interrupted
/// (<see cref="Recover"/>: <see cref="FeatureStore.Open"/> calls it); a staging folder without the marker is an unfinished
/// change, which the store's readers ignore and its next writer resumes or discards.
/// </summary>
public static class StoreCommit
{
    /// <summary>The file in the staging folder that lists the files to move; written atomically, it decides the change.</summary>
    public const string Marker = "COMMIT";

    /// <summary>A test hook: the name of a point (e.g. "append:staged") at which the process kills itself (SIGKILL), to test recovery.</summary>
    public const string KillPointVariable = "ONNX_ATTRIBUTION_KILL_AT";

    /// <summary>The staging folder of <paramref name="storeDirectory"/>.</summary>
    public static string StagingOf(string storeDirectory) => Path.Combine(storeDirectory, StoreFiles.Staging);

    /// <summary>Kills the process (as kill -9 would) when <see cref="KillPointVariable"/> names <paramref name="point"/>: the crash tests' hook.</summary>
    public static void KillPoint(string point)
    {
        if (Environment.GetEnvironmentVariable(KillPointVariable) == point)
        {
            System.Diagnostics.Process.GetCurrentProcess().Kill();
            Thread.Sleep(Timeout.Infinite);
        }
    }

    /// <summary>
    /// Makes the staged <paramref name="files"/> the store's: writes the marker, then moves each file over the store's and
    /// removes the staging folder. The caller holds the store's <see cref="StoreLock"/>.
    /// </summary>
    /// <exception cref="StoreFormatException">A listed file is not in the staging folder.</exception>
    public static void Commit(string storeDirectory, IReadOnlyList<string> files)
    {
        ArgumentNullException.ThrowIfNull(storeDirectory);
        ArgumentNullException.ThrowIfNull(files);
        string staging = StagingOf(storeDirectory);
        foreach (string file in files)
        {
            if (!File.Exists(Path.Combine(staging, file)))
            {
                throw new StoreFormatException($"{Path.Combine(staging, file)}: not staged; the next version of {storeDirectory} is incomplete");
            }
        }
        AtomicFile.Write(Path.Combine(staging, Marker), s => s.Write(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(files))), durable: true);
        RollForward(storeDirectory);
    }

    /// <summary>
    /// Finishes a commit a killed process left (the marker is in the staging folder): moves the files still staged and removes
    /// the staging folder. Does nothing when there is no marker. Takes the store's lock; while another process holds it
    /// (the committing writer itself), waits up to <paramref name="wait"/> for it to finish.
    /// </summary>
    /// <exception cref="StoreLockedException">A commit is pending and the writer holding the lock did not finish in time.</exception>
    public static void Recover(string storeDirectory, TimeSpan? wait = null)
    {
        ArgumentNullException.ThrowIfNull(storeDirectory);
        string marker = Path.Combine(StagingOf(storeDirectory), Marker);
        var deadline = DateTime.UtcNow + (wait ?? TimeSpan.FromSeconds(30));
        while (File.Exists(marker))
        {
            try
            {
                // Taking the lock finishes the commit (StoreLock.Acquire rolls a pending one forward).
                StoreLock.Acquire(storeDirectory, "finish a commit").Dispose();
                return;
            }
            catch (StoreLockedException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(20);
            }
        }
    }

    /// <summary>Removes an unfinished staging folder (no marker): the change it held is abandoned, the store is unchanged.</summary>
    public static void Discard(string storeDirectory)
    {
        ArgumentNullException.ThrowIfNull(storeDirectory);
        string staging = StagingOf(storeDirectory);
        if (File.Exists(Path.Combine(staging, Marker)))
        {
            throw new InvalidOperationException($"{staging} holds a decided commit: recover it, do not discard it");
        }
        if (Directory.Exists(staging))
        {
            Directory.Delete(staging, recursive: true);
        }
    }

    /// <summary>Moves the files the marker lists from the staging folder into the store (idempotent), then removes the staging
    /// folder; nothing without a marker. The caller holds the store's lock.</summary>
    internal static void RollForward(string storeDirectory)
    {
        string staging = StagingOf(storeDirectory);
        string marker = Path.Combine(staging, Marker);
        if (!File.Exists(marker))
        {
            return;
        }
        string[] files;
        try
        {
            files = JsonSerializer.Deserialize<string[]>(File.ReadAllText(marker)) ?? throw new JsonException("null");
        }
        catch (JsonException e)
        {
            throw new StoreFormatException($"{marker}: not a valid list of files ({e.Message}); the store's next version cannot be finished", e);
        }
        foreach (string file in files)
        {
            string from = Path.Combine(staging, file);
            if (File.Exists(from))
            {
                File.Move(from, Path.Combine(storeDirectory, file), overwrite: true);
                KillPoint("commit:moved-one");
            }
        }
        File.Delete(marker);
        Directory.Delete(staging, recursive: true);
    }
}
