using System.Globalization;

namespace OnnxAttribution.Store;

/// <summary>
/// The exclusive right to write a store folder: one writer at a time (featurize, finalize, merge, a method build), any number of
/// readers (readers never take it). Held as an operating-system lock on <see cref="StoreFiles.WriterLock"/>; the holder (process id, host,
/// what it does, start time) is recorded in <see cref="StoreFiles.WriterLockHolder"/> for the message a second writer gets.
/// </summary>
/// <remarks>
/// <para>The lock is an exclusive open of <see cref="StoreFiles.WriterLock"/> (<see cref="FileShare.None"/>: flock on Linux and macOS, a share
/// mode on Windows). It conflicts between two writers in one process as well as between processes, and the operating system
/// releases it when the holder exits or is killed: the files a killed writer leaves do not block the next one, which takes the
/// lock and records itself. (Setting DOTNET_SYSTEM_IO_DISABLEFILELOCKING turns .NET's flock off, and this lock with it.)</para>
/// <para>The holder is recorded in a second file because a file held this way cannot be read by another process; the holder
/// deletes it before releasing the lock (a killed holder's record stays until the next writer replaces it), so a finished
/// store holds the same files whoever wrote it and when. The empty lock file stays: deleting it could let two writers lock
/// two different files.</para>
/// </remarks>
public sealed class StoreLock : IDisposable
{
    private readonly FileStream _file;
    private readonly string _holderPath;
    private bool _disposed;

    private StoreLock(FileStream file, string holderPath)
    {
        _file = file;
        _holderPath = holderPath;
    }

    /// <summary>Takes the lock of <paramref name="directory"/> (created if missing), or fails at once if another writer holds it.</summary>
    /// <param name="directory">The store folder.</param>
    /// <param name="purpose">What the holder does (e.g. "featurize"), recorded for the message a second writer gets.</param>
    /// <exception cref="StoreLockedException">Another writer holds the lock; the message names it.</exception>
    public static StoreLock Acquire(string directory, string purpose)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(purpose);
        Directory.CreateDirectory(directory);
        string path = Path.Combine(directory, StoreFiles.WriterLock);
        FileStream file;
        try
        {
            file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 1);
        }
        catch (IOException e) when (e.GetType() == typeof(IOException) && File.Exists(path))
        {
            // A plain IOException on opening an existing file: it is open elsewhere (the subclasses are missing paths and the like).
            throw new StoreLockedException($"{directory}: another writer holds the store ({DescribeHolder(directory)}; {StoreFiles.WriterLock}); " +
                "wait for it to finish or stop it. Readers are not blocked.", e);
        }
        try
        {
            string holder = string.Create(CultureInfo.InvariantCulture,
                $"pid {Environment.ProcessId} on host {Environment.MachineName}, {purpose}, since {DateTimeOffset.UtcNow:yyyy-MM-ddTHH:mm:ssZ}");
            string holderPath = Path.Combine(directory, StoreFiles.WriterLockHolder);
            File.WriteAllText(holderPath, holder + "\n");
            var storeLock = new StoreLock(file, holderPath);
            try
            {
                // A change that a killed writer decided but did not finish is finished before anyone writes again.
                StoreCommit.RollForward(directory);
            }
            catch
            {
                storeLock.Dispose();
                throw;
            }
            return storeLock;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>The holder recorded beside the lock, or a note that it cannot be read.</summary>
    private static string DescribeHolder(string directory)
    {
        try
        {
            string holder = File.ReadAllText(Path.Combine(directory, StoreFiles.WriterLockHolder)).Trim();
            return holder.Length > 0 ? $"held by {holder}" : "its holder has not recorded itself yet";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"its holder is not recorded: {e.Message}";
        }
    }

    /// <summary>Deletes the holder's record, then releases the lock (the operating system also does when the process ends).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        try
        {
            // While the lock is still held: no other writer can have recorded itself yet.
            File.Delete(_holderPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A stale record only makes a later refusal name the wrong holder; the lock itself is released below.
        }
        _file.Dispose();
    }
}
