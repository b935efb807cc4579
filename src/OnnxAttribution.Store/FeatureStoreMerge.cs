namespace OnnxAttribution.Store;

/// <summary>Joins the shards of a store (featurized separately, e.g. on several machines) into one store.</summary>
public static class FeatureStoreMerge
{
    /// <summary>
    /// Checks that <paramref name="shardDirs"/> are complete shards 0 … n−1 of n (any order) whose settings agree except for
    /// the shard fields, and writes their rows into a new store in <paramref name="outDir"/> (not existing or empty) whose bytes
    /// equal those of one unsharded run.
    /// </summary>
    /// <returns>The merged store, opened read-only.</returns>
    /// <exception cref="StoreFormatException">A shard is incomplete or damaged, the settings differ (each difference listed),
    /// a shard is missing or repeated, or <paramref name="outDir"/> is not empty.</exception>
    /// <exception cref="StoreLockedException">Another writer holds <paramref name="outDir"/>.</exception>
    public static FeatureStore Merge(IReadOnlyList<string> shardDirs, string outDir)
    {
        ArgumentNullException.ThrowIfNull(shardDirs);
        ArgumentNullException.ThrowIfNull(outDir);
        if (shardDirs.Count == 0)
        {
            throw new ArgumentException("no shard directories given", nameof(shardDirs));
        }
        if (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any())
        {
            throw new StoreFormatException($"{outDir}: cannot merge into it: the directory is not empty");
        }
        using var storeLock = StoreLock.Acquire(outDir, "merge");
        var shards = new List<FeatureStore>();
        try
        {
            foreach (string dir in shardDirs)
            {
                shards.Add(FeatureStore.Open(dir));
            }
            var first = shards[0].Meta;
            foreach (var shard in shards.Skip(1))
            {
                var diffs = (first with { Shard = shard.Meta.Shard }).DescribeDifferences(shard.Meta, $"{shards[0].Directory} has", $"{shard.Directory} has");
                if (diffs.Count > 0)
                {
                    throw new StoreFormatException($"{Path.Combine(shard.Directory, StoreFiles.Meta)}: shards disagree:\n  " + string.Join("\n  ", diffs));
                }
            }
            foreach (var shard in shards)
            {
                // Every chunk, not only the ones Open samples: the merged store's checksums would otherwise bless a damaged row.
                if (StoreChecksums.TryLoad(shard.Directory) is { } sums)
                {
                    foreach (var (chunk, found) in sums.MismatchedChunks(shard).Take(1))
                    {
                        throw new StoreFormatException(sums.ChunkMismatch(Path.Combine(shard.Directory, StoreFiles.Features), chunk, shard.FirstRow, found) + "; featurize that shard again");
                    }
                }
            }
            int n = shards.Count;
            var byIndex = new FeatureStore?[n];
            foreach (var shard in shards)
            {
                var spec = shard.Meta.Shard;
                if (spec.Count != n)
                {
                    throw new StoreFormatException($"{Path.Combine(shard.Directory, StoreFiles.Meta)}: field 'shard.count': expected {n} (the number of shards given), found {spec.Count}");
                }
                if (byIndex[spec.Index] is { } other)
                {
                    throw new StoreFormatException($"{shard.Directory}: shard {spec.Index} of {n} is given twice (also {other.Directory})");
                }
                byIndex[spec.Index] = shard;
            }
            var merged = first with { Shard = ShardSpec.Whole, Checksums = StoreChecksums.AlgorithmName };
            string featuresPath = Path.Combine(outDir, StoreFiles.Features);
            var header = NpyFormat.CreatePreallocated(featuresPath, merged.DType, merged.Rows, merged.Projector.Dim);
            using (var output = new FileStream(featuresPath, FileMode.Open, FileAccess.Write, FileShare.None, bufferSize: 0))
            {
                var buffer = new byte[16 << 20];
                foreach (var shard in byIndex)
                {
                    long offset = header.DataOffset + (shard!.FirstRow * merged.Projector.Dim * merged.DType.ElementSize());
                    using var input = new FileStream(Path.Combine(shard.Directory, StoreFiles.Features), FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
                    long remaining = shard.Header.DataLength, position = shard.Header.DataOffset;
                    while (remaining > 0)
                    {
                        int n1 = RandomAccess.Read(input.SafeFileHandle, buffer.AsSpan(0, (int)Math.Min(buffer.Length, remaining)), position);
                        if (n1 <= 0)
                        {
                            throw new StoreFormatException($"{input.Name}: ended early while merging");
                        }
                        RandomAccess.Write(output.SafeFileHandle, buffer.AsSpan(0, n1), offset);
                        offset += n1;
                        position += n1;
                        remaining -= n1;
                    }
                }
                output.Flush(flushToDisk: true);
            }
            var done = new DoneBitmap(0, merged.Rows);
            done.SetAll();
            done.WriteAtomically(Path.Combine(outDir, StoreFiles.Done));
            StoreFiles.WriteMetaAtomically(outDir, merged);
            // Hashed from the merged file, so the chunks do not depend on where the shards' boundaries fell.
            StoreChecksums.ForFeatures(featuresPath, header).WithFiles(outDir, [StoreFiles.Meta]).Save(outDir);
            StoreHistory.Record(outDir, "merge", new StoreChange { AddedRows = [0, merged.Rows] });
        }
        finally
        {
            foreach (var shard in shards)
            {
                shard.Dispose();
            }
        }
        return FeatureStore.Open(outDir);
    }
}
