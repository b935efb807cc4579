using OnnxAttribution.Core.Data;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Gradients;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution;

/// <summary>Open sessions on a model directory for featurizing or querying with one plan and projection: the gradient side of
/// every gradient method (the TRAK family, DAS, K-FAC/EK-FAC, TracIn, Journey-TRAK).</summary>
public sealed class GradientModel : IDisposable
{
    private readonly OnnxDenoiser _forward;
    private readonly VjpSession _vjp;
    private readonly FactoredProjector? _factored;
    private readonly ReducedGradientSession? _reduced;
    private readonly ProjectionSettings _projection = null!;

    /// <summary>Opens the sessions.</summary>
    /// <param name="modelDirectory">The model folder.</param>
    /// <param name="plan">The featurization plan.</param>
    /// <param name="projection">The projection the gradient graph is specialised to.</param>
    /// <param name="session">ONNX Runtime settings.</param>
    /// <param name="kroneckerFactors">For factored projection: give the gradient graph the layers' Kronecker factors as outputs
    /// (K-FAC's curvature and preconditioned queries need them) instead of the projection computed inside the graph.</param>
    public GradientModel(string modelDirectory, FeaturizationPlan plan, ProjectionSettings projection, SessionSettings? session = null, bool kroneckerFactors = false)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(projection);
        Directory = ModelDirectory.Open(modelDirectory);
        _forward = Directory.OpenDenoiser(session);
        try
        {
            // The store is tied to the model's gradient graph (vjp.onnx), but featurizing runs a graph specialised to the
            // projection, derived from forward.onnx with the same rules: only per-example gradients for dense, only the
            // projected factors (or, for K-FAC, the raw factors) for factored. ONNX Runtime runs every node of a graph
            // whatever outputs are asked for. A folder without vjp.onnx (an exported training checkpoint) is identified by
            // its forward graph instead.
            FingerprintPath = File.Exists(Directory.VjpPath) ? Directory.VjpPath : Directory.RequireForward();
            ModelFiles = ModelFilesOf(Directory);
            Fingerprint = ModelFiles[Path.GetFileName(FingerprintPath)];
            // The graph also computes the measurement's cotangent from its own ε̂, so a pair takes one run, not a forward pass
            // first. Factored features without the factors: the graph applies the projector's P_in and P_out itself (convolving each
            // layer's input with P_in's columns), so no layer's input is unfolded and only ε̂ and k values per example leave ORT.
            var forward = Directory.LoadForward();
            var parameters = Directory.Metadata.Parameters.Count > 0 ? Directory.Metadata.Parameters.Select(p => p.Name).ToList() : null;
            bool inGraph = projection.Kind == ProjectorKind.Factored && !kroneckerFactors;
            if (inGraph)
            {
                var layers = Onnx.Differentiation.VjpBuilder.FactorLayers(forward, parameters);
                if (layers.Count == 0)
                {
                    throw new SettingException("Projector", ProjectorKind.Factored,
                        $"{Directory.RequireForward()} has no Conv, Gemm or MatMul weights among the parameters to factor", ProjectorKind.Dense);
                }
                _factored = FeatureExtractor.CreateFactored(layers.Select(l => (l.Layer, checked((int)l.InDim), checked((int)l.OutDim))).ToList(), projection);
            }
            var graph = Onnx.Differentiation.VjpBuilder.Build(forward, new Onnx.Differentiation.VjpOptions
            {
                Parameters = parameters,
                PerExampleGradients = projection.Kind == ProjectorKind.Dense,
                KroneckerFactors = projection.Kind == ProjectorKind.Factored && kroneckerFactors,
                FactorProjections = _factored is null ? null : InGraphProjections(_factored),
                CotangentFromOutput = true,
            });
            _vjp = VjpSession.FromBytes(Google.Protobuf.MessageExtensions.ToByteArray(graph),
                $"the gradient graph of {Directory.RequireForward()} ({projection.Kind.ToString().ToLowerInvariant()} features)", session, Directory.Metadata.Condition);
            _projection = projection;
            if ((session ?? SessionSettings.Default).ResolvedReduction == GradientReduction.Device && !kroneckerFactors)
            {
                // Sum the pairs and project inside ONNX Runtime's graph: only k values per example come back (GPU memory holds the rest on CUDA).
                _reduced = ReducedGradientSession.Open(graph, _vjp, projection.Kind == ProjectorKind.Dense ? projection : null, _factored?.OutputDim ?? 0,
                    session ?? SessionSettings.Default);
            }
            Extractor = ExtractorFor(plan, projection);
        }
        catch
        {
            _forward.Dispose();
            _vjp?.Dispose();
            _reduced?.Dispose();
            throw;
        }
    }

    /// <summary>The model folder opened.</summary>
    public ModelDirectory Directory { get; }

    /// <summary>SHA-256 of vjp.onnx (of forward.onnx in a folder without one): the store's model fingerprint.</summary>
    public string Fingerprint { get; }

    /// <summary>The file <see cref="Fingerprint"/> is the hash of.</summary>
    public string FingerprintPath { get; }

    /// <summary>SHA-256 of every model file featurize and queries depend on (<see cref="ModelFilesOf"/>), as recorded in meta.json.</summary>
    public IReadOnlyDictionary<string, string> ModelFiles { get; }

    /// <summary>
    /// SHA-256 (lower-case hex) by file name of what featurize and queries read from a model folder: the forward graph (the
    /// gradient graph run is derived from it), vjp.onnx when present (the store's <see cref="StoreMeta.ModelFingerprint"/>),
    /// and model.json (noise schedule, parameters, geometry).
    /// </summary>
    /// <exception cref="ModelFileException">The forward graph is missing.</exception>
    public static IReadOnlyDictionary<string, string> ModelFilesOf(ModelDirectory directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var files = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            [Path.GetFileName(directory.RequireForward())] = StoreMeta.FingerprintFile(directory.ForwardPath),
            [ModelMetadata.FileName] = StoreMeta.FingerprintFile(Path.Combine(directory.Path, ModelMetadata.FileName)),
        };
        if (File.Exists(directory.VjpPath))
        {
            files[Path.GetFileName(directory.VjpPath)] = StoreMeta.FingerprintFile(directory.VjpPath);
        }
        if (directory.Metadata.Condition is { Kind: ConditionKind.Text } text)
        {
            var encoder = PromptGraph.EncoderPath(directory.ForwardPath, text);
            files[Path.GetFileName(encoder)] = StoreMeta.FingerprintFile(encoder);
        }
        return files;
    }

    /// <summary>
    /// One line per model file that the store's meta.json records and that differs in (or is missing from) the model folder;
    /// empty when all match. Stores made before the files were recorded record none, so nothing is compared for them here.
    /// </summary>
    /// <param name="store">The store's meta.json.</param>
    /// <param name="directory">The model folder.</param>
    /// <param name="files">The folder's fingerprints when already computed (<see cref="ModelFilesOf"/>); null to compute them.</param>
    public static IReadOnlyList<string> ModelFileDifferences(StoreMeta store, ModelDirectory directory, IReadOnlyDictionary<string, string>? files = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(directory);
        var diffs = new List<string>();
        foreach (var (name, recorded) in store.ModelFiles)
        {
            string path = Path.Combine(directory.Path, name);
            string? actual = files is not null && files.TryGetValue(name, out var known) ? known : File.Exists(path) ? StoreMeta.FingerprintFile(path) : null;
            if (actual is null)
            {
                diffs.Add($"{path}: missing; the store was built from a model folder with {name} (SHA-256 {recorded[..12]}…)");
            }
            else if (actual != recorded)
            {
                diffs.Add($"{path}: SHA-256 {actual[..12]}…, but the store was built from a {name} with {recorded[..12]}…");
            }
        }
        return diffs;
    }

    /// <summary>The extractor for the plan and projection this model was opened with.</summary>
    internal FeatureExtractor Extractor { get; }

    /// <summary>
    /// Sessions for querying a feature store: the plan and projection recorded in its meta.json, checked against the model
    /// (the gradient graph's fingerprint and the feature length).
    /// </summary>
    /// <exception cref="AttributionException">The model is not the one the store was built from, or meta.json names an
    /// unknown measurement, projector or setting.</exception>
    public static GradientModel ForStore(FeatureStore store, string modelDirectory, SessionSettings? session = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        var model = new GradientModel(modelDirectory, TrakScorer.PlanOf(store), TrakScorer.ProjectionOf(store), session);
        try
        {
            model.RequireStore(store);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The projection kind the gradient graph was specialised to.</summary>
    public ProjectorKind Projector => _projection.Kind;

    /// <summary>
    /// An extractor for another plan (or, for dense, another projection) running on this model's sessions (valid while the
    /// model is not disposed): stores that differ only in their plan, such as Journey-TRAK's one store per timestep, share one model.
    /// </summary>
    /// <exception cref="ArgumentException">The projection's kind is not the one the gradient graph was built for, or the graph
    /// computes a factored projection itself and this one differs from it.</exception>
    internal FeatureExtractor ExtractorFor(FeaturizationPlan plan, ProjectionSettings projection)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(projection);
        if (projection.Kind != Projector)
        {
            throw new ArgumentException($"the gradient graph was built for {Projector} projection, not {projection.Kind}", nameof(projection));
        }
        if (_factored is not null && projection != _projection)
        {
            throw new ArgumentException($"the gradient graph applies the factored projection {_projection} itself, not {projection}", nameof(projection));
        }
        return new FeatureExtractor(new GradientSource(_forward, _vjp, Directory.CreateSchedule(), plan), projection, _factored,
            projection == _projection ? _reduced : null);
    }

    private static List<Onnx.Differentiation.FactorProjection> InGraphProjections(FactoredProjector projector) =>
        projector.Layers.Select((layer, l) =>
        {
            var pIn = new float[layer.InDim * projector.InputProjectionDim];
            var pOut = new float[layer.OutDim * projector.OutputProjectionDim];
            projector.CopyInputProjection(l, pIn);
            projector.CopyOutputProjection(l, pOut);
            return new Onnx.Differentiation.FactorProjection(layer.Layer, pIn, projector.InputProjectionDim, pOut, projector.OutputProjectionDim);
        }).ToList();

    /// <summary>Checks that the dataset's images have the model's channels and size.</summary>
    /// <exception cref="UserInputException">They do not.</exception>
    public void RequireGeometry(ImageDataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var m = Directory.Metadata;
        if (data.Channels != m.Channels || data.Height != m.ImageSize || data.Width != m.ImageSize)
        {
            throw new UserInputException($"dataset {data.Name} has images {data.Channels}×{data.Height}×{data.Width}; " +
                $"the model takes {m.Channels}×{m.ImageSize}×{m.ImageSize}: resize the images to {m.ImageSize} (the size setting of the data)");
        }
    }

    /// <summary>Checks that this model and projection are the ones a store was featurized with.</summary>
    /// <param name="store">The store.</param>
    /// <param name="extractor">The extractor that will score it (default: <see cref="Extractor"/>).</param>
    /// <remarks>Checks vjp.onnx's fingerprint (forward.onnx's without one) and, for stores that record them, every model file of
    /// <see cref="StoreMeta.ModelFiles"/>; older stores are checked by the first alone.</remarks>
    /// <exception cref="AttributionException">A model file's fingerprint or the feature length differs.</exception>
    internal void RequireStore(FeatureStore store, FeatureExtractor? extractor = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        RequireStore(store.Meta, store.Directory, extractor);
    }

    /// <summary>As <see cref="RequireStore(FeatureStore, FeatureExtractor?)"/> on a store's meta.json alone (a query head without features.npy).</summary>
    internal void RequireStore(StoreMeta meta, string storeDirectory, FeatureExtractor? extractor = null)
    {
        ArgumentNullException.ThrowIfNull(meta);
        if (Fingerprint != meta.ModelFingerprint)
        {
            throw new AttributionException($"{storeDirectory}: built from a model with SHA-256 {meta.ModelFingerprint[..12]}…, " +
                $"but {FingerprintPath} has {Fingerprint[..12]}…; featurize again for this model");
        }
        DatasetConditions.RequireMatch(meta.Settings, Directory.Metadata.Condition, storeDirectory, Directory.Path);
        var diffs = ModelFileDifferences(meta, Directory, ModelFiles);
        if (diffs.Count > 0)
        {
            throw new AttributionException($"{storeDirectory}: the model folder is not the one the store was built from (queries would run another model's graph):\n  " +
                string.Join("\n  ", diffs) + "\nPass the model folder the store was built from, or featurize again for this model");
        }
        int dim = (extractor ?? Extractor).Dim;
        if (dim != meta.Projector.Dim)
        {
            throw new AttributionException($"{storeDirectory}: the store has k = {meta.Projector.Dim}; the model's projection gives {dim}");
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _reduced?.Dispose();
        _vjp.Dispose();
        _forward.Dispose();
    }
}
