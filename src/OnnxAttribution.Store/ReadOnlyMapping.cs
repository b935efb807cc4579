using System.IO.MemoryMappedFiles;

namespace OnnxAttribution.Store;

/// <summary>A whole file mapped read-only as one view, its pointer acquired until <see cref="Dispose"/>.</summary>
internal sealed unsafe class ReadOnlyMapping : IDisposable
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;

    private ReadOnlyMapping(MemoryMappedFile file, MemoryMappedViewAccessor view, byte* start)
    {
        _file = file;
        _view = view;
        Start = start;
    }

    /// <summary>Byte 0 of the file; valid until <see cref="Dispose"/>.</summary>
    public byte* Start { get; private set; }

    /// <summary>Maps <paramref name="path"/>; <paramref name="what"/> names the content in the error message.</summary>
    /// <exception cref="StoreFormatException">The file cannot be mapped.</exception>
    public static ReadOnlyMapping Open(string path, string what)
    {
        MemoryMappedFile? file = null;
        MemoryMappedViewAccessor? view = null;
        try
        {
            file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, mapName: null, capacity: 0, MemoryMappedFileAccess.Read);
            view = file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* basePtr = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePtr);
            // The view may start before offset 0 of the request (page alignment): PointerOffset says by how much.
            return new ReadOnlyMapping(file, view, basePtr + view.PointerOffset);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            view?.Dispose();
            file?.Dispose();
            throw new StoreFormatException($"{path}: cannot map {what}: {e.Message}", e);
        }
    }

    /// <summary>Releases the pointer and unmaps the file.</summary>
    public void Dispose()
    {
        if (Start == null)
        {
            return;
        }
        Start = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }
}
