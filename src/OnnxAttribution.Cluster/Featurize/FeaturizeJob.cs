using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Cluster.Featurize;

/// <summary>
/// A TRAK or D-TRAK featurization split into <see cref="Items"/> work items: item i is shard i/n of the rows, written to its
/// own folder under <see cref="WorkDirectory"/> (a file system every silo reaches). The settings are those of the CLI's
/// <c>featurize</c>, so the merged shards equal a single-machine store built with the same settings.
/// </summary>
[GenerateSerializer]
public sealed record FeaturizeJob
{
    /// <summary>The model folder, as every silo reaches it.</summary>
    [Id(0)] public required string ModelDirectory { get; init; }

    /// <summary>The training images: "embedded", "fashion-mnist", a PNG folder or an IDX file.</summary>
    [Id(1)] public string Data { get; init; } = "embedded";

    /// <summary>Which training images ("all", "start:end", …).</summary>
    [Id(2)] public string Subset { get; init; } = "all";

    /// <summary>"trak" or "d-trak".</summary>
    [Id(3)] public string Method { get; init; } = "trak";

    /// <summary>K evenly spaced timesteps.</summary>
    [Id(4)] public int Timesteps { get; init; } = 10;

    /// <summary>Noise draws per timestep.</summary>
    [Id(5)] public int NoiseDraws { get; init; } = 1;

    /// <summary>The noise seed.</summary>
    [Id(6)] public long NoiseSeed { get; init; }

    /// <summary>The projector kind.</summary>
    [Id(7)] public ProjectorKind Projector { get; init; } = ProjectorKind.Dense;

    /// <summary>The projection's entry distribution.</summary>
    [Id(8)] public ProjectionKind Distribution { get; init; } = ProjectionKind.Rademacher;

    /// <summary>The feature dimension k.</summary>
    [Id(9)] public int Dim { get; init; } = 4096;

    /// <summary>The projection seed.</summary>
    [Id(10)] public long ProjectionSeed { get; init; }

    /// <summary>The element type of features.npy.</summary>
    [Id(11)] public StoreDType DType { get; init; } = StoreDType.Float32;

    /// <summary>Examples per gradient-graph call (does not change the result).</summary>
    [Id(12)] public int BatchSize { get; init; } = 16;

    /// <summary>The number of work items n (shards); at most the number of rows.</summary>
    [Id(13)] public required int Items { get; init; }

    /// <summary>The training rows N (the subset's size), filled in by <see cref="ClusterFeaturizer.Prepare"/>.</summary>
    [Id(14)] public long Rows { get; init; }

    /// <summary>The shared folder holding one store folder per item: the job's durable progress.</summary>
    [Id(15)] public required string WorkDirectory { get; init; }

    /// <summary>A running item whose worker sent no heartbeat for this long (or whose silo membership declared dead) is run again elsewhere.</summary>
    [Id(16)] public TimeSpan LeaseTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The folder of item <paramref name="item"/>: a shard store of the CLI's <c>featurize --shard item/n</c>.</summary>
    public string ItemDirectory(int item) => Path.Combine(WorkDirectory, $"shard-{item:D5}-of-{Items:D5}");

    /// <summary>Shard <paramref name="item"/> of <see cref="Items"/>.</summary>
    public ShardSpec Shard(int item) => new(item, Items);

    /// <summary>The method, which must be one whose store is a plain feature store split by rows (trak, d-trak).</summary>
    /// <exception cref="UserInputException">Another method.</exception>
    public TrakMethod FeatureMethod() => AttributionMethods.Find(Method) as TrakMethod
        ?? throw new UserInputException($"--method {Method}: the cluster featurizes trak and d-trak stores only (the other methods build their store in one run)");

    /// <summary>The method settings these fields give (as the CLI's featurize maps its options).</summary>
    public MethodSettings Settings() => new()
    {
        Timesteps = Timesteps,
        NoiseDraws = NoiseDraws,
        NoiseSeed = NoiseSeed,
        Projector = Projector,
        Distribution = Distribution,
        Dim = Dim,
        ProjectionSeed = ProjectionSeed,
        DType = DType,
        BatchSize = BatchSize,
    };

    /// <summary>Where the merged store's source.json says its rows came from (the image size is the model's).</summary>
    public StoreSource Source(int imageSize) => new(ModelDirectory, Data, Subset, imageSize);

    /// <summary>The featurize options of item <paramref name="item"/> on <paramref name="data"/> (the subset's images).</summary>
    public FeaturizeOptions Options(int item, ImageDataset data, SessionSettings session)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(session);
        var method = FeatureMethod();
        var request = new MethodBuildRequest
        {
            ModelDirectory = ModelDirectory,
            Data = data,
            Source = Source(data.Height),
            OutDirectory = ItemDirectory(item),
            Settings = Settings(),
            Session = session,
        };
        return method.Options(request) with { Shard = Shard(item) };
    }
}
