using OnnxAttribution.Store;

namespace OnnxAttribution.Server;

/// <summary>
/// The store a name serves now, swapped without a restart when its folder gets a new version: each request leases the
/// current <see cref="ServedStore"/> for its whole life, <see cref="Replace"/> makes a new one current for the requests
/// that come after, and the old one is disposed once its last lease ends. A request therefore starts and finishes on one
/// version, and none is refused because of a swap.
/// </summary>
internal sealed class StoreSlot : IDisposable
{
    private readonly Lock _gate = new();
    private Entry _current;

    public StoreSlot(ServedStore store, StoreSpec spec)
    {
        _current = new Entry(store);
        Spec = spec;
        // The version the store opened, not the folder's now: a change committed since then is picked up on the next check.
        Version = store.Info.VersionId ?? VersionKey(spec.Directory);
    }

    /// <summary>How the store was named on the command line.</summary>
    public StoreSpec Spec { get; }

    /// <summary>What identifies the store folder's version now (<see cref="VersionKey"/>) as of the last open.</summary>
    public string Version { get; private set; }

    /// <summary>The store requests get now (for listings; a request takes a <see cref="Lease"/>).</summary>
    public ServedStore Current
    {
        get
        {
            lock (_gate)
            {
                return _current.Store;
            }
        }
    }

    internal sealed class Entry(ServedStore store)
    {
        public ServedStore Store { get; } = store;

        public int Leases { get; set; }

        public bool Retired { get; set; }
    }

    /// <summary>A request's hold on one version of the store; dispose it when the request is answered.</summary>
    public sealed class Lease : IDisposable
    {
        private readonly StoreSlot _slot;
        private readonly Entry _entry;
        private int _released;

        internal Lease(StoreSlot slot, Entry entry)
        {
            _slot = slot;
            _entry = entry;
        }

        public ServedStore Store => _entry.Store;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                _slot.Release(_entry);
            }
        }
    }

    /// <summary>Leases the current store.</summary>
    public Lease Acquire()
    {
        lock (_gate)
        {
            _current.Leases++;
            return new Lease(this, _current);
        }
    }

    private void Release(Entry entry)
    {
        bool last;
        lock (_gate)
        {
            entry.Leases--;
            last = entry.Retired && entry.Leases == 0;
        }
        if (last)
        {
            DisposeLater(entry.Store);
        }
    }

    /// <summary>Makes <paramref name="next"/> (opened and warmed up) the store of the requests that come from now on.</summary>
    public void Replace(ServedStore next, string version)
    {
        Entry old;
        bool idle;
        lock (_gate)
        {
            old = _current;
            _current = new Entry(next);
            Version = next.Info.VersionId ?? version;
            old.Retired = true;
            idle = old.Leases == 0;
        }
        if (idle)
        {
            DisposeLater(old.Store);
        }
    }

    // Disposing waits for the store's workers, which have nothing left to do once no request holds it.
    private static void DisposeLater(ServedStore store) => _ = Task.Run(store.Dispose);

    /// <summary>
    /// What identifies the version of a store folder: the id of the newest entry of its history, or, for stores without one,
    /// the write times of the files a change replaces.
    /// </summary>
    public static string VersionKey(string directory)
    {
        try
        {
            if (StoreHistory.TryLoad(directory)?.Head?.Id is { } id)
            {
                return id;
            }
        }
        catch (StoreFormatException e)
        {
            return "unreadable: " + e.Message;
        }
        string[] files = [StoreFiles.Meta, StoreFiles.Method, StoreFiles.Preconditioner, StoreFiles.Ensemble];
        return string.Join(",", files.Select(f => Path.Combine(directory, f)).Where(File.Exists).Select(f => File.GetLastWriteTimeUtc(f).Ticks));
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _current.Retired = true;
        }
        _current.Store.Dispose();
    }
}
