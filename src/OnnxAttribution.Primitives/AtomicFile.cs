namespace OnnxAttribution.Primitives;

/// <summary>
/// A file written whole or not at all: the bytes go to <c>path.tmp</c>, which <see cref="Commit"/> renames over the path.
/// Disposing without committing (an exception, a cancellation) deletes the temporary file, so a failure leaves no partial file.
/// </summary>
/// <remarks>A process killed between creation and <see cref="Commit"/> still leaves <c>path.tmp</c>; rerunning overwrites it.</remarks>
public sealed class AtomicFile : IDisposable
{
    /// <summary>The suffix of the temporary file beside the target.</summary>
    public const string TempSuffix = ".tmp";

    private readonly FileStream _stream;
    private bool _done;

    private AtomicFile(string path, FileStream stream)
    {
        Path = path;
        _stream = stream;
    }

    /// <summary>The file that <see cref="Commit"/> writes.</summary>
    public string Path { get; }

    /// <summary>
    /// Creates <c><paramref name="path"/>.tmp</c> (and the folder above it), reserving <paramref name="reserveBytes"/> of disk
    /// space up front (fallocate on Linux), so a disk too small for the file is found before the work that fills it.
    /// </summary>
    /// <param name="path">The file to write.</param>
    /// <param name="reserveBytes">The file's final size when known; 0 reserves nothing.</param>
    /// <exception cref="AttributionException">The path is a directory, or the file cannot be created or its space reserved
    /// (the message names the file and the bytes needed).</exception>
    public static AtomicFile Create(string path, long reserveBytes = 0)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentOutOfRangeException.ThrowIfNegative(reserveBytes);
        if (Directory.Exists(path))
        {
            throw new AttributionException($"{path}: is a directory; cannot write a file there");
        }
        string tmp = path + TempSuffix;
        try
        {
            string? folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
            if (!string.IsNullOrEmpty(folder))
            {
                Directory.CreateDirectory(folder);
            }
            var stream = new FileStream(tmp, new FileStreamOptions
            {
                Mode = FileMode.Create,
                Access = FileAccess.Write,
                Share = FileShare.None,
                PreallocationSize = reserveBytes,
            });
            return new AtomicFile(path, stream);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(tmp);
            throw new AttributionException($"{path}: cannot write{(reserveBytes > 0 ? $" {DescribeBytes(reserveBytes)}" : "")}: {e.Message}", e);
        }
    }

    /// <summary>Writes <paramref name="path"/> whole or not at all with <paramref name="write"/> (see <see cref="Create"/>).</summary>
    /// <exception cref="AttributionException">The file cannot be created, written or renamed; no partial file is left.</exception>
    public static void Write(string path, Action<Stream> write, long reserveBytes = 0, bool durable = false)
    {
        ArgumentNullException.ThrowIfNull(write);
        using var file = Create(path, reserveBytes);
        file.Write(write);
        file.Commit(durable);
    }

    /// <summary>Writes to the temporary file with <paramref name="write"/>.</summary>
    /// <exception cref="AttributionException">Writing failed (a full disk, say); the temporary file is removed.</exception>
    public void Write(Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        ObjectDisposedException.ThrowIf(_done, this);
        Guard(() => write(_stream));
    }

    /// <summary>Flushes the temporary file (to disk when <paramref name="durable"/>), closes it and renames it over <see cref="Path"/>.</summary>
    /// <exception cref="AttributionException">Writing or renaming failed (a full disk, say); the temporary file is removed.</exception>
    public void Commit(bool durable = false)
    {
        ObjectDisposedException.ThrowIf(_done, this);
        Guard(() =>
        {
            _stream.Flush(durable);
            _stream.Dispose();
            File.Move(Path + TempSuffix, Path, overwrite: true);
        });
        _done = true;
    }

    /// <summary>Closes and deletes the temporary file unless <see cref="Commit"/> renamed it.</summary>
    public void Dispose()
    {
        if (_done)
        {
            return;
        }
        _done = true;
        try
        {
            _stream.Dispose();
        }
        catch (IOException)
        {
            // Flushing the last buffered bytes failed (a full disk): the file is deleted below anyway.
        }
        TryDelete(Path + TempSuffix);
    }

    /// <summary>"N bytes (x GiB)", for messages about disk space.</summary>
    public static string DescribeBytes(long bytes) =>
        bytes >= 1L << 30 ? $"{bytes} bytes ({bytes / (double)(1L << 30):F1} GiB)" : bytes >= 1L << 20 ? $"{bytes} bytes ({bytes / (double)(1L << 20):F1} MiB)" : $"{bytes} bytes";

    private void Guard(Action action)
    {
        try
        {
            action();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Dispose();
            throw new AttributionException($"{Path}: cannot write: {e.Message}", e);
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Nothing more can be done; the caller reports the original error.
        }
    }
}
