using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution;

/// <summary>What to featurize and where: the settings every row of the store depends on, plus batching.</summary>
public sealed record FeaturizeOptions
{
    /// <summary>The model folder (model.json, forward.onnx, vjp.onnx).</summary>
    public required string ModelDirectory { get; init; }

    /// <summary>The training images, already subset (row i of the store is image i of this dataset).</summary>
    public required ImageDataset Data { get; init; }

    /// <summary>How the subset was chosen (recorded in meta.json).</summary>
    public string Subset { get; init; } = "all";

    /// <summary>The (timestep, noise) pairs each row's gradient is averaged over, and the measurement differentiated.</summary>
    public required FeaturizationPlan Plan { get; init; }

    /// <summary>The projection of the gradients to features: kind, entry distribution, requested k and seed.</summary>
    public required ProjectionSettings Projection { get; init; }

    /// <summary>The element type of features.npy.</summary>
    public StoreDType DType { get; init; } = StoreDType.Float32;

    /// <summary>The method the store is for (a label in meta.json, e.g. "trak" or "d-trak").</summary>
    public string Method { get; init; } = "trak";

    /// <summary>The store folder; created if missing, continued if an earlier run was interrupted.</summary>
    public required string OutDirectory { get; init; }

    /// <summary>The rows of <see cref="Data"/> this store holds; <see cref="ShardSpec.Whole"/> for all of them.</summary>
    public ShardSpec Shard { get; init; } = ShardSpec.Whole;

    /// <summary>Examples per gradient-graph call; does not change the result.</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>
    /// Also write each row's diffusion loss ‖ε − ε̂‖²/D, averaged over the plan's pairs, to <see cref="StoreFiles.Losses"/>
    /// (N×1 float32) from the same forward passes; resumable with the rows. Does not change the features.
    /// </summary>
    public bool RecordLosses { get; init; }
    /// <summary>Also write <see cref="StoreFiles.Norms"/>: the L2 norm of each row's unprojected gradient (dense projection only).</summary>
    public bool GradientNorms { get; init; }

    /// <summary>ONNX Runtime settings (device, threads).</summary>
    public SessionSettings Session { get; init; } = SessionSettings.Default;

    /// <summary>
    /// Examples featurized at once, each by its own call into ONNX Runtime on one thread; 0 (the default): one per core on
    /// the CPU when <see cref="SessionSettings.IntraOpThreads"/> is 0, else 1. An example's features do not depend on it.
    /// </summary>
    /// <remarks>
    /// ONNX Runtime's threads inside one run of the small gradient graphs here barely share the work: a second thread
    /// made a run 1.1× faster, while two examples on one thread each ran 1.6-1.8× as many per second (PipelineBench).
    /// </remarks>
    public int Streams { get; init; }

    /// <summary>The streams <see cref="Streams"/> resolves to.</summary>
    public int ResolvedStreams => ResolveStreams(Session, Streams);

    /// <summary>The session settings a model opened for this featurization uses (<see cref="StreamSessionOf"/>).</summary>
    public SessionSettings StreamSession => StreamSessionOf(Session, Streams);

    /// <summary>The streams a featurization with <paramref name="session"/> and <paramref name="streams"/> (0: automatic) runs.</summary>
    public static int ResolveStreams(SessionSettings session, int streams)
    {
        ArgumentNullException.ThrowIfNull(session);
        return streams > 0 ? streams : session.Device == ExecutionDevice.Cpu && session.IntraOpThreads == 0 ? Environment.ProcessorCount : 1;
    }

    /// <summary>
    /// The session settings of a model opened to featurize with <paramref name="session"/> in <paramref name="streams"/>
    /// streams: one ONNX Runtime thread per stream when the threads are ONNX Runtime's choice (an example's bits are the same
    /// with one thread or two: <c>FeaturizeStreamsTests</c>).
    /// </summary>
    public static SessionSettings StreamSessionOf(SessionSettings session, int streams)
    {
        ArgumentNullException.ThrowIfNull(session);
        return ResolveStreams(session, streams) > 1 && session.IntraOpThreads == 0 ? session with { IntraOpThreads = 1 } : session;
    }
}
