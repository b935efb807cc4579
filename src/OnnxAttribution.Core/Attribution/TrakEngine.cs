using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// TRAK / D-TRAK (Park et al. 2023; Zheng et al. 2024), the featurizer: the training set's projected gradients into a
/// store (and the sidecars: losses, gradient norms). The kernel inverse is <see cref="PreconditionerBuilder"/>'s; queries
/// are <see cref="TrakScorer"/>'s.
/// </summary>
public static class TrakEngine
{
    /// <summary>meta.json settings key recording <see cref="FeaturizationPlan.NormalizePairs"/> (value "l2"; absent when off).</summary>
    public const string PairNormalizationSetting = "pairNormalization";

    /// <summary>The store metadata these options produce (the row contents depend on exactly these fields).</summary>
    public static StoreMeta Meta(FeaturizeOptions o, string modelFingerprint, int dim) => new()
    {
        ModelFingerprint = modelFingerprint,
        Method = o.Method,
        Measurement = Measurement.StoreName(o.Plan.Measurement),
        Timesteps = o.Plan.Timesteps.ToArray(),
        NoiseDraws = o.Plan.NoiseDraws,
        NoiseSeed = o.Plan.NoiseSeed,
        Projector = o.Projection.ToSpec(dim),
        DType = o.DType,
        Rows = o.Data.Count,
        DatasetFingerprint = o.Data.Fingerprint,
        Subset = o.Subset,
        Shard = o.Shard,
        // Only the settings in use are written, so stores made before an option existed keep their meta.json.
        Settings = SettingsOf(o.Plan),
    };

    /// <summary>The meta.json settings a plan needs recorded: pair normalisation and the one-random-timestep mode, each only when on.</summary>
    internal static SortedDictionary<string, string> SettingsOf(FeaturizationPlan plan)
    {
        var settings = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (plan.NormalizePairs)
        {
            settings[PairNormalizationSetting] = "l2";
        }
        if (plan.RandomTimestepRound is long round)
        {
            settings[PlanSetting] = OneRandomTimestep;
            settings[RoundSetting] = round.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        return settings;
    }

    /// <summary>meta.json settings of a one-random-timestep plan (<see cref="FeaturizationPlan.RandomTimestepRound"/>).</summary>
    internal const string PlanSetting = "plan", OneRandomTimestep = "one-random-timestep", RoundSetting = "plan.round";

    /// <summary>
    /// Featurizes the rows of the shard that are not done yet, flushing after every batch: a killed run loses at most
    /// one batch and a rerun with the same options continues, giving the same bytes as an uninterrupted run.
    /// </summary>
    /// <returns>The completed store (only this shard's rows when sharded).</returns>
    public static FeatureStore Featurize(FeaturizeOptions o, IProgress<(long Done, long Total)>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(o);
        using var model = new GradientModel(o.ModelDirectory, o.Plan, o.Projection, o.StreamSession);
        return Featurize(o, model, progress, cancel);
    }

    /// <summary>
    /// <see cref="Featurize(FeaturizeOptions, IProgress{ValueTuple{long, long}}?, CancellationToken)"/> on an open model,
    /// so several stores can share its sessions; <c>o.ModelDirectory</c> and <c>o.Session</c> are taken to be the model's.
    /// </summary>
    public static FeatureStore Featurize(FeaturizeOptions o, GradientModel model, IProgress<(long Done, long Total)>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(o);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfLessThan(o.BatchSize, 1);
        if (o.GradientNorms && o.Projection.Kind != ProjectorKind.Dense)
        {
            throw new UserInputException($"{o.OutDirectory}: gradient norms need the dense projector; the factored projector never forms the whole gradient");
        }
        var extractor = model.ExtractorFor(o.Plan, o.Projection);
        model.RequireGeometry(o.Data);
        var labels = DatasetConditions.Of(model.Directory.Metadata.Condition, o.Data, model.Directory.Path);
        var meta = Meta(o, model.Fingerprint, extractor.Dim) with
        {
            ModelFiles = model.ModelFiles,
            Settings = DatasetConditions.WithSettings(SettingsOf(o.Plan), model.Directory.Metadata.Condition, labels),
        };
        using var writer = FeatureStoreWriter.OpenOrCreate(o.OutDirectory, meta);
        SidecarMatrix? Column(bool wanted, string file) =>
            wanted ? SidecarMatrix.OpenOrCreate(Path.Combine(o.OutDirectory, file), writer.FirstRow, writer.RowCount, 1, create: writer.DoneCount == 0) : null;
        using var losses = Column(o.RecordLosses, StoreFiles.Losses);
        using var norms = Column(o.GradientNorms, StoreFiles.Norms);
        var pending = writer.PendingRows;
        long total = writer.RowCount;
        long done = writer.DoneCount;
        progress?.Report((done, total));
        int d = o.Data.ImageLength;
        int k = extractor.Dim;
        var images = new float[o.BatchSize * d];
        var features = new float[o.BatchSize * k];
        var rowLosses = new float[o.BatchSize];
        var rows = new long[o.BatchSize];
        var rowNorms = new float[o.BatchSize];
        var conditions = labels is null ? null : new long[o.BatchSize];
        int streams = o.ResolvedStreams;
        int index = 0;
        while (index < pending.Count)
        {
            cancel.ThrowIfCancellationRequested();
            // A batch of consecutive pending rows, so each is written in one piece.
            int count = 1;
            while (count < o.BatchSize && index + count < pending.Count && pending[index + count] == pending[index] + count)
            {
                count++;
            }
            long first = pending[index];
            for (int b = 0; b < count; b++)
            {
                rows[b] = first + b;
                if (conditions is not null)
                {
                    conditions[b] = labels![first + b];
                }
            }
            o.Data.Pixels.Slice(checked((int)(first * d)), count * d).CopyTo(images);
            ExtractInStreams(extractor, streams, count, d, k, images, features, losses is null ? null : rowLosses, rows, norms is null ? null : rowNorms,
                conditions, cancel);
            // Losses and norms reach the disk before the rows are marked done, so a done row always has them.
            losses?.WriteRows(first, rowLosses.AsSpan(0, count));
            losses?.Flush();
            norms?.WriteRows(first, rowNorms.AsSpan(0, count));
            norms?.Flush();
            writer.WriteRows(first, count, features.AsSpan(0, count * k));
            writer.Flush();
            index += count;
            done += count;
            progress?.Report((done, total));
        }
        losses?.Dispose();
        norms?.Dispose();
        var store = writer.Complete();
        try
        {
            StoreChecksums.RecordFiles(store, replace: pending.Count > 0, StoreFiles.Losses, StoreFiles.Norms);
            if (pending.Count > 0 || StoreHistory.TryLoad(o.OutDirectory) is null)
            {
                StoreHistory.Record(o.OutDirectory, "featurize", new StoreChange { AddedRows = [store.FirstRow, store.FirstRow + store.Rows] });
            }
            return store;
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Extracts a batch as up to <paramref name="streams"/> contiguous parts at once. Each example is computed on its own
    /// (see docs/design.md, "Reproducibility"), so the parts give the same bits as one call.
    /// </summary>
    private static void ExtractInStreams(FeatureExtractor extractor, int streams, int count, int d, int k, float[] images, float[] features,
        float[]? rowLosses, long[] rows, float[]? rowNorms, long[]? conditions, CancellationToken cancel)
    {
        if (extractor.SharesProjectionAcrossBatch)
        {
            // P is generated as it projects: one call takes the whole batch, runs the gradients in streams and projects them together.
            extractor.Extract(images.AsSpan(0, count * d), count, features.AsSpan(0, count * k), rowLosses is null ? default : rowLosses.AsSpan(0, count),
                rows.AsSpan(0, count), rowNorms is null ? default : rowNorms.AsSpan(0, count), streams, conditions is null ? default : conditions.AsSpan(0, count));
            return;
        }
        int parts = Math.Min(streams, count);
        void Part(int part)
        {
            int start = (int)((long)count * part / parts), end = (int)((long)count * (part + 1) / parts), n = end - start;
            extractor.Extract(images.AsSpan(start * d, n * d), n, features.AsSpan(start * k, n * k), rowLosses is null ? default : rowLosses.AsSpan(start, n),
                rows.AsSpan(start, n), rowNorms is null ? default : rowNorms.AsSpan(start, n), 1, conditions is null ? default : conditions.AsSpan(start, n));
        }
        if (parts <= 1)
        {
            Part(0);
            return;
        }
        try
        {
            Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts, CancellationToken = cancel }, Part);
        }
        catch (AggregateException e) when (e.InnerExceptions.Count >= 1)
        {
            // One part's error, as it was raised (not wrapped): the callers name the file and field from it.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
        }
    }

    /// <summary>The losses of <see cref="StoreFiles.Losses"/>, one per row held, in row order.</summary>
    /// <exception cref="StoreFormatException">The file is missing or does not fit the store.</exception>
    public static float[] ReadLosses(FeatureStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        var path = Path.Combine(store.Directory, StoreFiles.Losses);
        if (!File.Exists(path))
        {
            throw new StoreFormatException($"{path}: not found; featurize with losses recorded (FeaturizeOptions.RecordLosses)");
        }
        StoreChecksums.RequireFile(store.Directory, StoreFiles.Losses, "featurize the store again");
        return SidecarMatrix.ReadAll(path, store.Rows, 1);
    }
}
