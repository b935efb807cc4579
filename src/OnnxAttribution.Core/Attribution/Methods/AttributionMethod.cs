using System.Text.Json;
using System.Text.Json.Nodes;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Core.Models;
using OnnxAttribution.Core.Projection;
using OnnxAttribution.Core.Runtime;
using OnnxAttribution.Core.Store;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>Progress of a method's build: which stage, and how far along it is.</summary>
public readonly record struct MethodProgress(string Stage, long Done, long Total)
{
    /// <summary>A (done, total) progress of one stage that reports to <paramref name="progress"/>; null when it is null.</summary>
    public static IProgress<(long Done, long Total)>? Of(IProgress<MethodProgress>? progress, string stage) =>
        progress is null ? null : new SyncProgress<(long Done, long Total)>(p => progress.Report(new MethodProgress(stage, p.Done, p.Total)));
}

/// <summary>
/// The settings a method store can be built with: the union of what the methods take, as a command line offers them.
/// Each method declares the ones it reads (<see cref="IAttributionMethod.SettingsUsed"/>) and records what it used in its
/// <c>method.json</c>; <see cref="RequireUsedBy"/> refuses a setting changed from its default that the method would
/// not read, so that nothing a user asks for is silently ignored.
/// </summary>
public sealed record MethodSettings
{
    /// <summary>What every method that featurizes projected gradients reads (TRAK, D-TRAK, DAS, gradient cosine).</summary>
    public static readonly IReadOnlyList<string> GradientFeatureSettings =
    [
        nameof(Measurement), nameof(Timesteps), nameof(NoiseDraws), nameof(NoiseSeed), nameof(Projector), nameof(Distribution),
        nameof(Dim), nameof(ProjectionSeed), nameof(DType), nameof(BatchSize),
    ];

    /// <summary>The measurement differentiated; null for the method's own default (TRAK: loss, D-TRAK: square).</summary>
    public MeasurementKind? Measurement { get; init; }

    /// <summary>K timesteps t = 0, T/K, … for the methods that average over timesteps.</summary>
    public int Timesteps { get; init; } = 10;

    /// <summary>Noise draws per timestep.</summary>
    public int NoiseDraws { get; init; } = 1;

    /// <summary>Seed of the noise draws (<see cref="FeaturizationPlan.Noise"/>).</summary>
    public long NoiseSeed { get; init; }

    /// <summary>Dense (whole gradient) or factored (per-layer Kronecker) projection; methods that need one kind refuse the other.</summary>
    public ProjectorKind Projector { get; init; } = ProjectorKind.Dense;

    /// <summary>The distribution of the projection's entries.</summary>
    public ProjectionKind Distribution { get; init; } = ProjectionKind.Rademacher;

    /// <summary>Feature dimension k of projected methods.</summary>
    public int Dim { get; init; } = 4096;

    /// <summary>Seed of the projection.</summary>
    public long ProjectionSeed { get; init; }

    /// <summary>The element type of the stored features.</summary>
    public StoreDType DType { get; init; } = StoreDType.Float32;

    /// <summary>
    /// λ relative to the mean diagonal of the curvature (TRAK kernel, K-FAC factors); null for the method's own
    /// <see cref="IDampedMethod.DefaultDamping"/>, the value chosen on the LDS validation queries.
    /// </summary>
    public double? Damping { get; init; }

    /// <summary>Examples per gradient-graph call; never changes a result.</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>Journey-TRAK: the number of sampling steps of the query's trajectory (DDIM) that are attributed.</summary>
    public int JourneySteps { get; init; } = 10;

    /// <summary>TracIn / ReTrac: model folders of the saved training checkpoints (each with its learning rate in model.json).</summary>
    public IReadOnlyList<string> Checkpoints { get; init; } = [];

    /// <summary>Seed of the method's own random choices (random baseline, per-example timestep draws).</summary>
    public long Seed { get; init; }

    /// <summary>The pixel baseline's similarity: cosine (default) or negative L2 distance.</summary>
    public PixelMetric PixelMetric { get; init; } = PixelMetric.Cosine;

    /// <summary>The settings (property names and values) that differ from those of <c>new MethodSettings()</c>.</summary>
    public IReadOnlyList<(string Setting, object? Value)> Changed()
    {
        var d = new MethodSettings();
        var changed = new List<(string, object?)>();
        void Add(bool differs, string name, object? value)
        {
            if (differs)
            {
                changed.Add((name, value));
            }
        }
        Add(Measurement is not null, nameof(Measurement), Measurement);
        Add(Timesteps != d.Timesteps, nameof(Timesteps), Timesteps);
        Add(NoiseDraws != d.NoiseDraws, nameof(NoiseDraws), NoiseDraws);
        Add(NoiseSeed != d.NoiseSeed, nameof(NoiseSeed), NoiseSeed);
        Add(Projector != d.Projector, nameof(Projector), Projector);
        Add(Distribution != d.Distribution, nameof(Distribution), Distribution);
        Add(Dim != d.Dim, nameof(Dim), Dim);
        Add(ProjectionSeed != d.ProjectionSeed, nameof(ProjectionSeed), ProjectionSeed);
        Add(DType != d.DType, nameof(DType), DType);
        Add(Damping is not null, nameof(Damping), Damping);
        Add(BatchSize != d.BatchSize, nameof(BatchSize), BatchSize);
        Add(JourneySteps != d.JourneySteps, nameof(JourneySteps), JourneySteps);
        Add(Checkpoints.Count > 0, nameof(Checkpoints), string.Join(",", Checkpoints));
        Add(Seed != d.Seed, nameof(Seed), Seed);
        Add(PixelMetric != d.PixelMetric, nameof(PixelMetric), PixelMetric);
        return changed;
    }

    /// <summary>Throws when a setting changed from its default is not among <paramref name="used"/>.</summary>
    /// <param name="method">The method the settings are for (named in the message).</param>
    /// <param name="used">The settings it reads; by default its <see cref="IAttributionMethod.SettingsUsed"/>.</param>
    /// <exception cref="SettingException">The first such setting: the method would ignore it.</exception>
    public void RequireUsedBy(IAttributionMethod method, IReadOnlyCollection<string>? used = null)
    {
        ArgumentNullException.ThrowIfNull(method);
        used ??= method.SettingsUsed;
        foreach (var (setting, value) in Changed())
        {
            if (!used.Contains(setting))
            {
                string takes = used.Count == 0 ? "none" : string.Join(", ", used);
                throw new SettingException(setting, value, $"method {method.Name} does not use this setting (it takes: {takes}); leave it out");
            }
        }
    }
}

/// <summary>What a method store is built from.</summary>
public sealed record MethodBuildRequest
{
    /// <summary>The model attributed (model.json, forward.onnx, vjp.onnx).</summary>
    public required string ModelDirectory { get; init; }

    /// <summary>The training images, already subset: row i of every store is image i of this dataset.</summary>
    public required ImageDataset Data { get; init; }

    /// <summary>Where the rows came from as the user named it; saved as source.json.</summary>
    public required StoreSource Source { get; init; }

    /// <summary>The method store folder; created if missing, continued if a build was interrupted.</summary>
    public required string OutDirectory { get; init; }

    /// <summary>The method's settings; each method reads those it uses.</summary>
    public MethodSettings Settings { get; init; } = new();

    /// <summary>ONNX Runtime settings (device, threads).</summary>
    public SessionSettings Session { get; init; } = SessionSettings.Default;

    /// <summary>Receives the progress of each stage of the build; null for none.</summary>
    public IProgress<MethodProgress>? Progress { get; init; }
}

/// <summary>
/// One attribution method: builds its store from a model and training set (resumable where that is long work), and
/// opens it to answer queries. Stores are folders with <c>method.json</c> (<see cref="MethodManifest"/>) and
/// <c>source.json</c> (<see cref="StoreSource"/>).
/// </summary>
public interface IAttributionMethod
{
    /// <summary>The name the CLI uses with <c>--method</c>.</summary>
    string Name { get; }

    /// <summary>One line for help and the README table: what the method differentiates or compares.</summary>
    string Summary { get; }

    /// <summary>The <see cref="MethodSettings"/> properties (by name) this method's build reads; the others it ignores.</summary>
    IReadOnlyCollection<string> SettingsUsed { get; }

    /// <summary>Builds (or finishes building) the method store. A rerun after a kill continues where it stopped.</summary>
    void Build(MethodBuildRequest request, CancellationToken cancel = default);

    /// <summary>Opens a built store.</summary>
    /// <param name="storeDirectory">The method store.</param>
    /// <param name="modelDirectory">The model it was built from (from source.json when the caller has nothing better).</param>
    /// <param name="session">ONNX Runtime settings for the methods that run the model at query time.</param>
    IAttributionScorer Open(string storeDirectory, string modelDirectory, SessionSettings session);
}

/// <summary>
/// A method whose damping λ can change on a built store without featurizing again (the kernel inverse is rebuilt from
/// ΦᵀΦ, or λ acts at query time): what a damping sweep on validation queries needs.
/// </summary>
public interface IDampedMethod : IAttributionMethod
{
    /// <summary>
    /// The damping a build uses when <see cref="MethodSettings.Damping"/> is null: the λ chosen for this method on the
    /// validation queries of the LDS evaluation (docs/results/lds.json; the README's LDS section).
    /// </summary>
    double DefaultDamping { get; }

    /// <summary>The damping of a build with <paramref name="settings"/>: its own, else <see cref="DefaultDamping"/>.</summary>
    double DampingOf(MethodSettings settings) => settings?.Damping ?? DefaultDamping;

    /// <summary>Makes the complete store in <paramref name="storeDirectory"/> score as if it had been built with <paramref name="relativeDamping"/>.</summary>
    /// <param name="storeDirectory">The method store.</param>
    /// <param name="relativeDamping">λ, relative as in <see cref="MethodSettings.Damping"/>.</param>
    /// <param name="grams">Gram matrices kept between calls of one sweep.</param>
    void Redamp(string storeDirectory, double relativeDamping, GramCache grams);
}

/// <summary>
/// The method of a store folder and its settings (<c>method.json</c>): written last by a build, so its presence says the
/// store is complete.
/// </summary>
public sealed record MethodManifest(string Method, JsonObject Settings)
{
    /// <summary>Format of method.json; readers refuse newer ones.</summary>
    public int Version { get; init; } = 1;

    /// <summary>Writes method.json into <paramref name="directory"/> (created if missing), atomically.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, StoreFiles.Method);
        JsonFile.Save(path, this);
    }

    /// <summary>Reads method.json, or null when the folder has none.</summary>
    /// <exception cref="UserInputException">The file is not valid.</exception>
    public static MethodManifest? TryLoad(string directory)
    {
        var path = Path.Combine(directory, StoreFiles.Method);
        if (!File.Exists(path))
        {
            return null;
        }
        MethodManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<MethodManifest>(File.ReadAllText(path), ModelMetadata.JsonOptions);
        }
        catch (JsonException e)
        {
            throw new UserInputException($"{path}: not valid ({e.Message})", e);
        }
        if (manifest is null || string.IsNullOrEmpty(manifest.Method))
        {
            throw new UserInputException($"{path}: field 'method' is missing");
        }
        if (manifest.Version > 1)
        {
            throw new UserInputException($"{path}: field 'version' is {manifest.Version}; this build reads version 1");
        }
        return manifest;
    }

    /// <summary>Reads the method.json of a store that must be complete and of <paramref name="method"/>.</summary>
    /// <exception cref="UserInputException">method.json is missing (an unfinished build), invalid, or of another method.</exception>
    public static MethodManifest Require(string directory, string method)
    {
        var manifest = TryLoad(directory)
            ?? throw new UserInputException($"{Path.Combine(directory, StoreFiles.Method)} not found: the {method} store is not complete; run 'featurize --method {method}' again to finish it");
        if (!string.Equals(manifest.Method, method, StringComparison.OrdinalIgnoreCase))
        {
            throw new UserInputException($"{Path.Combine(directory, StoreFiles.Method)}: field 'method' is '{manifest.Method}', expected '{method}'");
        }
        return manifest;
    }

    /// <summary>A typed settings record from <see cref="Settings"/>.</summary>
    /// <exception cref="UserInputException">The settings do not fit <typeparamref name="T"/>.</exception>
    public T SettingsAs<T>(string directory)
    {
        try
        {
            return Settings.Deserialize<T>(ModelMetadata.JsonOptions) ?? throw new JsonException("null");
        }
        catch (JsonException e)
        {
            throw new UserInputException($"{Path.Combine(directory, StoreFiles.Method)}: field 'settings' does not fit method {Method} ({e.Message})", e);
        }
    }

    /// <summary>
    /// Builds a store that holds nothing but where its rows come from (source.json) and <paramref name="settings"/>
    /// (method.json): the model-free baselines, which read what they need when opened.
    /// </summary>
    public static void SaveRecordOnly<T>(MethodBuildRequest request, string method, T settings)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Source.Save(request.OutDirectory);
        Of(method, settings).Save(request.OutDirectory);
        request.Progress?.Report(new MethodProgress("record", request.Data.Count, request.Data.Count));
    }

    /// <summary>A manifest whose settings are <paramref name="settings"/> serialized.</summary>
    public static MethodManifest Of<T>(string method, T settings) =>
        new(method, JsonSerializer.SerializeToNode(settings, ModelMetadata.JsonOptions)!.AsObject());
}
