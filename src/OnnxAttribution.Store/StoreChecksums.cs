using System.Globalization;
using System.IO.Hashing;
using System.Text;
using System.Text.Json;

namespace OnnxAttribution.Store;

/// <summary>
/// checksums.json: the XxHash64 of features.npy's data section in chunks of <see cref="ChunkRows"/> rows, and of whole files
/// beside it (meta.json, preconditioner.bin, losses.npy, …), so that a changed or damaged byte anywhere is found by
/// StoreVerifier (in OnnxAttribution.Core), and with a few sampled chunks on every <see cref="FeatureStore.Open"/>.
/// </summary>
/// <remarks>
/// <para>Written when the store is complete (<see cref="FeatureStoreWriter.Complete"/>, <see cref="FeatureStoreMerge.Merge"/>)
/// from the finished features.npy, so chunks are right whatever order, resumption or sharding wrote the rows; derived
/// files are added by the step that writes them (finalize, featurize's sidecars). Always replaced atomically.</para>
/// <para>XxHash64 finds damage, not tampering: whoever can rewrite features.npy can rewrite this file.</para>
/// </remarks>
public sealed record StoreChecksums
{
    /// <summary>The hash algorithm this code writes and reads (also meta.json's <see cref="StoreMeta.Checksums"/>).</summary>
    public const string AlgorithmName = "xxhash64";

    /// <summary>The layout version of checksums.json.</summary>
    public const int CurrentFormatVersion = 1;

    /// <summary>Chunks hold about this many bytes of rows (at least one row), so the check on open reads a few MiB.</summary>
    public const long TargetChunkBytes = 4 << 20;

    /// <summary>Chunks checked on every open besides the first and the last.</summary>
    internal const int RandomChunksOnOpen = 2;

    /// <summary>Layout version of checksums.json.</summary>
    public int FormatVersion { get; init; } = CurrentFormatVersion;

    /// <summary>The hash: <see cref="AlgorithmName"/>.</summary>
    public string Algorithm { get; init; } = AlgorithmName;

    /// <summary>Rows per chunk of features.npy (the last chunk may hold fewer).</summary>
    public required long ChunkRows { get; init; }

    /// <summary>Rows features.npy held when the chunks were hashed.</summary>
    public required long Rows { get; init; }

    /// <summary>Chunk c covers the store's rows [c·ChunkRows, min((c+1)·ChunkRows, Rows)): the XxHash64 of their bytes, hex.</summary>
    public required IReadOnlyList<string> FeatureChunks { get; init; }

    /// <summary>Whole files of the store folder by name.</summary>
    public IReadOnlyDictionary<string, FileChecksum> Files { get; init; } = new SortedDictionary<string, FileChecksum>(StringComparer.Ordinal);

    /// <summary>
    /// <see cref="FeaturesFingerprint"/> when the 8-bit copy (<see cref="StoreFiles.QuantizedFeatures"/>) was made from the rows;
    /// null (and not written) when the store has none. A copy whose value differs from the rows' fingerprint now is stale.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? QuantizedFrom { get; init; }

    /// <summary>The XxHash64 of the row count, chunk size and every chunk hash: names the content of features.npy.</summary>
    public string FeaturesFingerprint() =>
        Hash(Encoding.UTF8.GetBytes(string.Join("\n", new[] { Rows.ToString(CultureInfo.InvariantCulture), ChunkRows.ToString(CultureInfo.InvariantCulture) }
            .Concat(FeatureChunks))));

    /// <summary>The number of chunks of a store of <paramref name="rows"/> rows.</summary>
    internal static long ChunkCount(long rows, long chunkRows) => (rows + chunkRows - 1) / chunkRows;

    /// <summary>The rows per chunk for rows of <paramref name="rowBytes"/> bytes.</summary>
    public static long ChunkRowsFor(long rowBytes) => Math.Max(1, TargetChunkBytes / Math.Max(1, rowBytes));

    /// <summary>The XxHash64 of <paramref name="bytes"/> as lower-case hex.</summary>
    internal static string Hash(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(XxHash64.Hash(bytes));

    /// <summary>The checksums of the data section of a finished features.npy, read once from start to end.</summary>
    /// <exception cref="StoreFormatException">The file cannot be read or is shorter than its header says.</exception>
    public static StoreChecksums ForFeatures(string featuresPath, NpyHeader header)
    {
        long rowBytes = header.Columns * header.DType.ElementSize();
        long chunkRows = ChunkRowsFor(rowBytes);
        long chunks = ChunkCount(header.Rows, chunkRows);
        var hashes = new List<string>((int)Math.Min(chunks, 1 << 20));
        var buffer = new byte[checked((int)Math.Min(chunkRows * rowBytes, Math.Max(1, header.DataLength)))];
        try
        {
            using var file = File.OpenHandle(featuresPath);
            for (long c = 0; c < chunks; c++)
            {
                long firstRow = c * chunkRows;
                int length = checked((int)(Math.Min(chunkRows, header.Rows - firstRow) * rowBytes));
                long offset = header.DataOffset + (firstRow * rowBytes);
                for (int read = 0; read < length;)
                {
                    int n = RandomAccess.Read(file, buffer.AsSpan(read, length - read), offset + read);
                    if (n == 0)
                    {
                        throw new StoreFormatException($"{featuresPath}: ended at byte {offset + read} while hashing chunk {c}; expected {header.FileLength} bytes");
                    }
                    read += n;
                }
                hashes.Add(Hash(buffer.AsSpan(0, length)));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StoreFormatException($"{featuresPath}: cannot read it to record its checksums: {e.Message}", e);
        }
        return new StoreChecksums { ChunkRows = chunkRows, Rows = header.Rows, FeatureChunks = hashes };
    }

    /// <summary>The length and XxHash64 of a whole file.</summary>
    /// <exception cref="StoreFormatException">The file cannot be read.</exception>
    public static FileChecksum OfFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 1 << 16);
            var hash = new XxHash64();
            hash.Append(stream);
            return new FileChecksum(stream.Length, Convert.ToHexStringLower(hash.GetCurrentHash()));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StoreFormatException($"{path}: cannot read it to check its checksum: {e.Message}", e);
        }
    }

    /// <summary>This record with <paramref name="names"/> (files of <paramref name="directory"/>) hashed now; missing files are skipped.</summary>
    public StoreChecksums WithFiles(string directory, IEnumerable<string> names)
    {
        var files = new SortedDictionary<string, FileChecksum>(Files.ToDictionary(), StringComparer.Ordinal);
        foreach (string name in names)
        {
            string path = Path.Combine(directory, name);
            if (File.Exists(path))
            {
                files[name] = OfFile(path);
            }
        }
        return this with { Files = files };
    }

    /// <summary>
    /// Records the checksums of <paramref name="names"/> (files of the store, e.g. preconditioner.bin after finalize) in the
    /// store's checksums.json; a store made before checksums existed gets its features' chunks hashed first.
    /// </summary>
    /// <param name="store">The open store.</param>
    /// <param name="replace">False to keep a checksum already recorded (so a rerun that wrote nothing does not bless a file
    /// damaged since); true when the file was just written.</param>
    /// <param name="names">File names in the store folder; missing files are skipped.</param>
    /// <exception cref="StoreFormatException">checksums.json is damaged, or a file cannot be read.</exception>
    public static void RecordFiles(FeatureStore store, bool replace, params string[] names)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(names);
        var sums = TryLoad(store.Directory)
            ?? ForFeatures(Path.Combine(store.Directory, StoreFiles.Features), store.Header).WithFiles(store.Directory, [StoreFiles.Meta]);
        sums.WithFiles(store.Directory, replace ? names : names.Where(n => !sums.Files.ContainsKey(n))).Save(store.Directory);
    }

    /// <summary>
    /// Throws unless <paramref name="name"/> in the store folder matches its recorded checksum; does nothing when the store
    /// records none for it (a store made before checksums existed, or a file written outside the store's steps).
    /// </summary>
    /// <param name="directory">The store folder.</param>
    /// <param name="name">The file's name in it.</param>
    /// <param name="remedy">What the user should do when it does not match (e.g. "run 'finalize' again").</param>
    /// <exception cref="StoreFormatException">The file differs from its checksum, or checksums.json is damaged.</exception>
    public static void RequireFile(string directory, string name, string remedy)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (TryLoad(directory)?.CheckFile(directory, name, remedy) is { } problem)
        {
            throw new StoreFormatException(problem);
        }
    }

    /// <summary>Null when the file matches its checksum or none is recorded; otherwise what differs, naming the file.</summary>
    public string? CheckFile(string directory, string name, string remedy)
    {
        if (!Files.TryGetValue(name, out var expected))
        {
            return null;
        }
        string path = Path.Combine(directory, name);
        if (!File.Exists(path))
        {
            return $"{path}: missing, but {StoreFiles.Checksums} records it ({expected.Bytes} bytes); {remedy}";
        }
        var actual = OfFile(path);
        return actual == expected ? null
            : $"{path}: does not match its checksum in {StoreFiles.Checksums} (recorded {expected.Bytes} bytes, {AlgorithmName} {expected.Hash}; " +
                $"found {actual.Bytes} bytes, {actual.Hash}): the file was changed or damaged after it was written; {remedy}";
    }

    /// <summary>
    /// Every chunk of <paramref name="store"/>'s features that does not match its hash, with the hash found, in order; and
    /// through <paramref name="nonFinite"/> the store's local rows holding NaN or ±Infinity (one call per such row).
    /// </summary>
    public IEnumerable<(long Chunk, string Found)> MismatchedChunks(FeatureStore store, Action<long>? nonFinite = null)
    {
        for (long c = 0; c < FeatureChunks.Count; c++)
        {
            var (first, end) = ChunkRange(c);
            var bytes = store.GetLocalRowsBytes(first, end);
            if (nonFinite is not null)
            {
                ReportNonFiniteRows(bytes, store.DType, store.Dim, first, nonFinite);
            }
            string found = Hash(bytes);
            if (found != FeatureChunks[(int)c])
            {
                yield return (c, found);
            }
        }
    }

    /// <summary>Calls <paramref name="report"/> with the local row of every row in <paramref name="bytes"/> that holds NaN or ±Infinity.</summary>
    public static void ReportNonFiniteRows(ReadOnlySpan<byte> bytes, StoreDType dtype, int dim, long firstRow, Action<long> report)
    {
        if (dtype == StoreDType.Float32)
        {
            ReportNonFiniteRows(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes), dim, firstRow, report);
        }
        else
        {
            ReportNonFiniteRows(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(bytes), dim, firstRow, report);
        }
    }

    private static void ReportNonFiniteRows<T>(ReadOnlySpan<T> values, int dim, long firstRow, Action<long> report)
        where T : System.Numerics.IFloatingPointIeee754<T>
    {
        for (int i = 0; i < values.Length; i += dim)
        {
            foreach (T v in values.Slice(i, dim))
            {
                if (!T.IsFinite(v))
                {
                    report(firstRow + (i / dim));
                    break;
                }
            }
        }
    }

    /// <summary>The local rows [first, end) of chunk <paramref name="chunk"/>.</summary>
    public (long First, long End) ChunkRange(long chunk) => (chunk * ChunkRows, Math.Min((chunk + 1) * ChunkRows, Rows));

    /// <summary>The mismatch message for a chunk of features.npy, naming the dataset rows.</summary>
    internal string ChunkMismatch(string featuresPath, long chunk, long firstDatasetRow, string found)
    {
        var (first, end) = ChunkRange(chunk);
        return $"{featuresPath}: rows {firstDatasetRow + first}–{firstDatasetRow + end - 1} (chunk {chunk} of {FeatureChunks.Count}) do not match their checksum in {StoreFiles.Checksums} " +
            $"(recorded {FeatureChunks[(int)chunk]}, found {found}): the file was changed or damaged after featurize";
    }

    /// <summary>Throws unless these checksums describe a store of <paramref name="header"/>'s shape.</summary>
    public void Validate(string path, NpyHeader header)
    {
        long rowBytes = header.Columns * header.DType.ElementSize();
        if (FormatVersion != CurrentFormatVersion)
        {
            throw new StoreFormatException($"{path}: field 'formatVersion': expected {CurrentFormatVersion}, found {FormatVersion}");
        }
        if (Algorithm != AlgorithmName)
        {
            throw new StoreFormatException($"{path}: field 'algorithm': expected '{AlgorithmName}', found '{Algorithm}'");
        }
        if (Rows != header.Rows)
        {
            throw new StoreFormatException($"{path}: field 'rows': expected {header.Rows} (features.npy's shape), found {Rows}");
        }
        if (ChunkRows < 1 || ChunkRows > int.MaxValue / Math.Max(1, rowBytes))
        {
            throw new StoreFormatException($"{path}: field 'chunkRows': expected 1 to {int.MaxValue / Math.Max(1, rowBytes)} rows of {rowBytes} bytes, found {ChunkRows}");
        }
        long chunks = ChunkCount(Rows, ChunkRows);
        if (FeatureChunks is null || FeatureChunks.Count != chunks)
        {
            throw new StoreFormatException($"{path}: field 'featureChunks': expected {chunks} hashes ({Rows} rows in chunks of {ChunkRows}), " +
                $"found {FeatureChunks?.Count.ToString(CultureInfo.InvariantCulture) ?? "none"}");
        }
        foreach (var (name, sum) in Files)
        {
            if (sum is null || sum.Bytes < 0 || sum.Hash is null || sum.Hash.Length != 16)
            {
                throw new StoreFormatException($"{path}: field 'files.{name}': expected a length and a 16-digit hash");
            }
        }
    }

    /// <summary>Writes checksums.json into <paramref name="directory"/> atomically (a temporary file, flushed, renamed).</summary>
    public void Save(string directory)
    {
        string path = Path.Combine(directory, StoreFiles.Checksums);
        string tmp = path + StoreFiles.TempSuffix;
        using (var stream = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            stream.Write(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(this, StoreMeta.JsonOptions) + "\n"));
            stream.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>The store's checksums.json, or null when it has none.</summary>
    /// <exception cref="StoreFormatException">The file exists but cannot be read or parsed.</exception>
    public static StoreChecksums? TryLoad(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        string path = Path.Combine(directory, StoreFiles.Checksums);
        if (!File.Exists(path))
        {
            return null;
        }
        try
        {
            return JsonSerializer.Deserialize<StoreChecksums>(File.ReadAllText(path), StoreMeta.JsonOptions)
                ?? throw new StoreFormatException($"{path}: expected a JSON object, found null");
        }
        catch (JsonException e)
        {
            throw new StoreFormatException($"{path}: not a valid {StoreFiles.Checksums}: {e.Message}", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StoreFormatException($"{path}: cannot read it: {e.Message}", e);
        }
    }
}
