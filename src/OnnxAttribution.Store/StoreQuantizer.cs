namespace OnnxAttribution.Store;

/// <summary>
/// Writes the 8-bit copy of a completed store's rows (<see cref="StoreFiles.QuantizedFeatures"/> and
/// <see cref="StoreFiles.QuantizedScales"/>), so that <see cref="FeatureStore.TopK"/> scans a quarter (float32) or half (float16)
/// of the bytes and re-ranks its candidates from the exact rows.
/// </summary>
/// <remarks>
/// The files are recorded in checksums.json with <see cref="StoreChecksums.QuantizedFrom"/> (the rows they were made from), so
/// <c>verify</c> checks every byte of them and <see cref="FeatureStore.Open"/> refuses a copy made from other rows. Removed rows
/// are zero in features.npy and so zero in the copy (scale 0); the scan skips them anyway. <c>append</c> and <c>remove</c> delete
/// the copy (the scan then reads the exact rows) rather than rebuild it: run <see cref="Quantize"/> again after them.
/// </remarks>
public static class StoreQuantizer
{
    /// <summary>Rows quantised per block of work (a block's int8 rows are written with one call).</summary>
    private const int BlockRows = 1024;

    /// <summary>Quantises every row of the store in <paramref name="directory"/>, replacing any 8-bit copy it holds.</summary>
    /// <param name="directory">A completed store folder.</param>
    /// <param name="progress">Rows done of all rows.</param>
    /// <returns>The bytes of the int8 rows written.</returns>
    /// <exception cref="StoreFormatException">The store cannot be opened, or a file cannot be written.</exception>
    /// <exception cref="StoreLockedException">Another writer holds the store.</exception>
    public static long Quantize(string directory, IProgress<(long Done, long Total)>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        using var storeLock = StoreLock.Acquire(directory, "quantize");
        Delete(directory);
        using var store = FeatureStore.Open(directory);
        string rowsPath = Path.Combine(directory, StoreFiles.QuantizedFeatures);
        string tmp = rowsPath + StoreFiles.TempSuffix;
        var header = NpyFormat.CreatePreallocated(tmp, StoreDType.Int8, store.Rows, store.Dim);
        var scales = new float[store.Rows];
        long blocks = (store.Rows + BlockRows - 1) / BlockRows, done = 0;
        try
        {
            using (var file = new FileStream(tmp, FileMode.Open, FileAccess.Write, FileShare.None, bufferSize: 0))
            {
                Parallel.For(0, blocks, () => (Row: new float[store.Dim], Bytes: new sbyte[BlockRows * store.Dim]), (b, _, buffers) =>
                {
                    long first = b * BlockRows;
                    int count = (int)Math.Min(BlockRows, store.Rows - first);
                    for (int i = 0; i < count; i++)
                    {
                        store.ReadRow(store.FirstRow + first + i, buffers.Row);
                        scales[first + i] = QuantizedRows.Quantize(buffers.Row, buffers.Bytes.AsSpan(i * store.Dim, store.Dim));
                    }
                    var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(buffers.Bytes.AsSpan(0, count * store.Dim));
                    RandomAccess.Write(file.SafeFileHandle, bytes, header.DataOffset + (first * store.Dim));
                    progress?.Report((Interlocked.Add(ref done, count), store.Rows));
                    return buffers;
                }, _ => { });
                file.Flush(flushToDisk: true);
            }
            File.Move(tmp, rowsPath, overwrite: true);
            NpyFormat.WriteMatrix(Path.Combine(directory, StoreFiles.QuantizedScales), scales, store.Rows, 1);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            File.Delete(tmp);
            throw new StoreFormatException($"{rowsPath}: cannot write the 8-bit copy: {e.Message}", e);
        }
        var sums = StoreChecksums.TryLoad(directory)
            ?? StoreChecksums.ForFeatures(Path.Combine(directory, StoreFiles.Features), store.Header).WithFiles(directory, [StoreFiles.Meta]);
        (sums.WithFiles(directory, [StoreFiles.QuantizedFeatures, StoreFiles.QuantizedScales]) with { QuantizedFrom = sums.FeaturesFingerprint() }).Save(directory);
        return header.DataLength;
    }

    /// <summary>Deletes the store's 8-bit copy and its checksums, if it has one (a change to the rows makes it stale).</summary>
    /// <param name="directory">The store folder (or a staged next version of it).</param>
    public static void Delete(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var sums = StoreChecksums.TryLoad(directory);
        if (sums is not null && (sums.QuantizedFrom is not null || sums.Files.Keys.Any(IsCopy)))
        {
            sums = sums with
            {
                QuantizedFrom = null,
                Files = new SortedDictionary<string, FileChecksum>(sums.Files.Where(f => !IsCopy(f.Key)).ToDictionary(), StringComparer.Ordinal),
            };
            sums.Save(directory);
        }
        File.Delete(Path.Combine(directory, StoreFiles.QuantizedFeatures));
        File.Delete(Path.Combine(directory, StoreFiles.QuantizedScales));
    }

    private static bool IsCopy(string name) => name is StoreFiles.QuantizedFeatures or StoreFiles.QuantizedScales;
}
