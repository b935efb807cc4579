using System.Security.Cryptography;
using System.Text;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution.Influence;

/// <summary>What a curvature estimate is computed from and where it goes.</summary>
internal sealed record CurvatureOptions
{
    /// <summary>The model folder (model.json, forward.onnx, vjp.onnx).</summary>
    public required string ModelDirectory { get; init; }

    /// <summary>The training images the factors average over (every row).</summary>
    public required ImageDataset Data { get; init; }

    /// <summary>The (t, ε) pairs each example is measured at; its measurement is unused (the cotangent is a Fisher sample).</summary>
    public required FeaturizationPlan Plan { get; init; }

    /// <summary>The store's projection (it only selects the gradient graph with Kronecker factors).</summary>
    public required ProjectionSettings Projection { get; init; }

    /// <summary>Seed of the Monte-Carlo Fisher draws z (<see cref="Measurement.FisherSample"/>).</summary>
    public long FisherSeed { get; init; }

    /// <summary>K-FAC, or EK-FAC (a second pass over the rows refits the eigenvalues).</summary>
    public CurvatureKind Kind { get; init; } = CurvatureKind.Kfac;

    /// <summary>The store folder: kfac.bin and, while a pass runs, kfac.partial.</summary>
    public required string OutDirectory { get; init; }

    /// <summary>Examples per gradient-graph call; changes only the order of float64 additions.</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>ONNX Runtime settings (device, threads).</summary>
    public SessionSettings Session { get; init; } = SessionSettings.Default;

    /// <summary>How often a running pass saves its sums to kfac.partial (a kill loses at most this much work).</summary>
    public TimeSpan CheckpointInterval { get; init; } = TimeSpan.FromSeconds(20);
}

/// <summary>
/// Estimates K-FAC / EK-FAC curvature over a training set (Mlodozeniec et al. 2024, K-FAC-expand of the GGN; George et al. 2018): pass 1
/// accumulates the factors A, B from Monte-Carlo Fisher gradients at every (example, t, ε) of the plan and
/// eigendecomposes them; for EK-FAC pass 2 runs the same samples again and refits the eigenvalues. Both passes are
/// resumable: the running float64 sums are saved to kfac.partial every <see cref="CurvatureOptions.CheckpointInterval"/>,
/// and kfac.bin is written when a pass ends.
/// </summary>
internal static class CurvatureEstimator
{
    private const string PartialMagic = "OAKFACP1";

    /// <summary>
    /// The identity of a curvature estimate's inputs: SHA-256 of the model's gradient-graph fingerprint, the dataset's
    /// fingerprint and row count, the plan's timesteps, draws and noise seed, the Fisher seed and the layer shapes.
    /// </summary>
    public static byte[] Fingerprint(string modelFingerprint, string datasetFingerprint, long rows, FeaturizationPlan plan, long fisherSeed, IReadOnlyList<KroneckerLayerShape> layers)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(layers);
        var text = new StringBuilder()
            .Append("kfac-inputs v1\nmodel ").Append(modelFingerprint)
            .Append("\ndata ").Append(datasetFingerprint).Append(' ').Append(rows)
            .Append("\ntimesteps ").AppendJoin(',', plan.Timesteps)
            .Append("\ndraws ").Append(plan.NoiseDraws).Append(" noise-seed ").Append(plan.NoiseSeed)
            .Append("\nfisher-seed ").Append(fisherSeed);
        foreach (var l in layers)
        {
            text.Append("\nlayer ").Append(l.Name).Append(' ').Append(l.OutDim).Append('x').Append(l.InDim).Append(" S=").Append(l.Positions);
        }
        return SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString()));
    }

    /// <summary>Computes (or finishes computing) the curvature and writes kfac.bin; returns it when it is already there.</summary>
    /// <exception cref="UserInputException">The folder holds factors or a partial pass from other inputs.</exception>
    /// <exception cref="StoreFormatException">kfac.bin or kfac.partial is damaged.</exception>
    public static KroneckerCurvature Estimate(CurvatureOptions o, IProgress<MethodProgress>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(o);
        ArgumentOutOfRangeException.ThrowIfLessThan(o.BatchSize, 1);
        if (o.Data.Count == 0)
        {
            throw new UserInputException("K-FAC needs at least one training image");
        }
        using var model = new GradientModel(o.ModelDirectory, o.Plan, o.Projection, o.Session, kroneckerFactors: true);
        model.RequireGeometry(o.Data);
        var source = model.Extractor.Source;
        var shapes = LayerGradients.Shapes(source);
        var labels = DatasetConditions.Of(model.Directory.Metadata.Condition, o.Data, model.Directory.Path);
        var fingerprint = Fingerprint(model.Fingerprint, DatasetConditions.DataIdentity(o.Data.Fingerprint, labels), o.Data.Count, o.Plan, o.FisherSeed, shapes);
        Directory.CreateDirectory(o.OutDirectory);
        var path = Path.Combine(o.OutDirectory, StoreFiles.Kfac);
        KroneckerCurvature? curvature = null;
        if (File.Exists(path))
        {
            curvature = KroneckerCurvature.Load(path);
            if (!curvature.Fingerprint.AsSpan().SequenceEqual(fingerprint))
            {
                throw new UserInputException($"{path} holds factors of other inputs (model, data, timesteps, noise or Fisher seed); delete it or build into another folder");
            }
            if (curvature.Kind == CurvatureKind.Ekfac && o.Kind == CurvatureKind.Kfac)
            {
                throw new UserInputException($"{path} holds EK-FAC factors; build K-FAC into another folder");
            }
        }
        if (curvature is null)
        {
            var factors = new KroneckerFactorAccumulator(shapes);
            Pass(o, source, labels, shapes, fingerprint, 1, factors, "curvature", progress, cancel);
            curvature = factors.Decompose(fingerprint, progress is null ? null : new SyncProgress<(long Done, long Total)>(p => progress.Report(new MethodProgress("eigenbases", p.Done, p.Total))));
            curvature.Save(path);
            File.Delete(Path.Combine(o.OutDirectory, StoreFiles.KfacPartial));
        }
        if (o.Kind == CurvatureKind.Ekfac && curvature.Kind == CurvatureKind.Kfac)
        {
            var eigenvalues = new EigenvalueAccumulator(curvature);
            Pass(o, source, labels, shapes, fingerprint, 2, eigenvalues, "eigenvalues", progress, cancel);
            curvature = eigenvalues.Refit();
            curvature.Save(path);
            File.Delete(Path.Combine(o.OutDirectory, StoreFiles.KfacPartial));
        }
        return curvature;
    }

    /// <summary>One pass over the rows with Fisher-sample cotangents, continuing from kfac.partial when it holds this pass.</summary>
    private static void Pass(CurvatureOptions o, GradientSource source, long[]? labels, IReadOnlyList<KroneckerLayerShape> shapes, byte[] fingerprint, int stage,
        CurvatureAccumulator accumulator, string label, IProgress<MethodProgress>? progress, CancellationToken cancel)
    {
        var partial = Path.Combine(o.OutDirectory, StoreFiles.KfacPartial);
        long rows = o.Data.Count;
        long done = TryResume(partial, fingerprint, stage, accumulator);
        progress?.Report(new MethodProgress(label, done, rows));
        var outputs = LayerGradients.Outputs(source);
        int d = o.Data.ImageLength;
        var images = new float[o.BatchSize * d];
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (done < rows)
        {
            cancel.ThrowIfCancellationRequested();
            int count = (int)Math.Min(o.BatchSize, rows - done);
            o.Data.Pixels.Slice(checked((int)(done * d)), count * d).CopyTo(images);
            source.ForEachPair(images.AsSpan(0, count * d), count, outputs,
                (values, _) => accumulator.Add(LayerGradients.Factors(shapes, values), count),
                cotangent: Measurement.FisherSample(o.FisherSeed, done, o.Plan, d), conditions: labels is null ? default : labels.AsSpan(checked((int)done), count));
            done += count;
            if (done < rows && clock.Elapsed >= o.CheckpointInterval)
            {
                SavePartial(partial, fingerprint, stage, done, accumulator);
                clock.Restart();
            }
            progress?.Report(new MethodProgress(label, done, rows));
        }
    }

    /// <summary>
    /// Restores the sums of a partial pass and returns the rows it covers; 0 when there is none or it belongs to the other
    /// pass (a pass-1 leftover once its kfac.bin exists).
    /// </summary>
    private static long TryResume(string path, byte[] fingerprint, int stage, CurvatureAccumulator accumulator)
    {
        if (!File.Exists(path))
        {
            return 0;
        }
        using var stream = File.OpenRead(path);
        using var r = new BinaryReader(stream);
        try
        {
            var magic = Encoding.ASCII.GetString(r.ReadBytes(8));
            int version = r.ReadInt32();
            int fileStage = r.ReadInt32();
            var fileFingerprint = r.ReadBytes(32);
            long done = r.ReadInt64();
            if (magic != PartialMagic || version != 1)
            {
                throw new StoreFormatException($"{path}: not a partial K-FAC pass (magic {PartialMagic}, version 1 expected)");
            }
            if (!fileFingerprint.AsSpan().SequenceEqual(fingerprint))
            {
                throw new UserInputException($"{path} is a partial pass over other inputs (model, data, timesteps, noise or Fisher seed); delete it or build into another folder");
            }
            if (fileStage != stage)
            {
                return 0;
            }
            if (stream.Length - stream.Position != accumulator.StateBytes)
            {
                throw new StoreFormatException($"{path}: {stream.Length} bytes; pass {stage} over these layers needs {56 + accumulator.StateBytes}");
            }
            accumulator.ReadState(r);
            return done;
        }
        catch (EndOfStreamException e)
        {
            throw new StoreFormatException($"{path}: truncated ({stream.Length} bytes)", e);
        }
    }

    /// <summary>kfac.partial: magic, int32 version 1, int32 pass, the inputs' SHA-256, int64 rows done, then the sums.</summary>
    private static void SavePartial(string path, byte[] fingerprint, int stage, long done, CurvatureAccumulator accumulator)
    {
        var tmp = path + ".tmp";
        using (var stream = File.Create(tmp))
        using (var w = new BinaryWriter(stream))
        {
            w.Write(Encoding.ASCII.GetBytes(PartialMagic));
            w.Write(1);
            w.Write(stage);
            w.Write(fingerprint);
            w.Write(done);
            accumulator.WriteState(w);
        }
        File.Move(tmp, path, overwrite: true);
    }
}
