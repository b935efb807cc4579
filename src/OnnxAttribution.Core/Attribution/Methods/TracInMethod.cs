using System.Globalization;
using System.Numerics.Tensors;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>One training checkpoint of a TracIn store, as recorded in its method.json.</summary>
/// <param name="Directory">The checkpoint's model folder as the user named it (forward.onnx + model.json).</param>
/// <param name="Step">Optimizer steps done when it was saved.</param>
/// <param name="LearningRate">η_c: the learning rate of the step taken from it.</param>
internal sealed record TracInCheckpoint(string Directory, int Step, double LearningRate);

/// <summary>
/// The settings TracIn and ReTrac read: a feature store's (<see cref="GradientFeatureSettings"/>; the projector must be
/// dense and the measurement the loss), the training checkpoints, and the seed (recorded, no longer used).
/// </summary>
internal sealed record TracInSettings : GradientFeatureSettings
{
    /// <inheritdoc cref="MethodSettings.Checkpoints"/>
    public IReadOnlyList<string> Checkpoints { get; init; } = [];

    /// <inheritdoc cref="MethodSettings.Seed"/>
    public long Seed { get; init; }
}

/// <summary>The settings of a TracIn / ReTrac store (method.json).</summary>
/// <param name="Checkpoints">The checkpoints, in the order of the store's <c>checkpoint-c</c> folders.</param>
/// <param name="QueryTimesteps">The timesteps a query's gradient is averaged over (and, in stores built since the training
/// side uses the same plan, every training example's too: the plan of each checkpoint store's meta.json says which).</param>
/// <param name="NoiseDraws">Noise draws per query timestep.</param>
/// <param name="NoiseSeed">Seed of the query's noise.</param>
/// <param name="Seed">The build's <see cref="MethodSettings.Seed"/> (stores built before the fixed training plan drew one
/// random timestep per example and checkpoint from it; recorded, no longer used).</param>
/// <param name="Projection">The dense projection of every gradient.</param>
internal sealed record TracInStoreSettings(
    IReadOnlyList<TracInCheckpoint> Checkpoints,
    IReadOnlyList<long> QueryTimesteps,
    int NoiseDraws,
    long NoiseSeed,
    long Seed,
    ProjectionSettings Projection);

/// <summary>
/// Diffusion-TracIn and Diffusion-ReTrac (Xie et al. 2024, "Data Attribution for Diffusion Models: Timestep-induced Bias in
/// Influence Estimation", Sec. 3 and 5; TracInCP of Pruthi et al. 2020, Eq. 3): over saved training checkpoints θ_c with
/// learning rates η_c,
/// TracIn τ(q)ᵢ = Σ_c η_c ∇L(q; θ_c) · ∇L(xᵢ; θ_c), and ReTrac τ(q)ᵢ = Σ_c η_c ∇L(q; θ_c) · ∇L(xᵢ; θ_c) / ‖∇L(xᵢ; θ_c)‖,
/// which removes the training gradient's norm, large at some timesteps, that makes a few examples influential for every query.
/// </summary>
/// <remarks>
/// <para>L is the L2 diffusion loss ‖ε − ε̂‖²/D; the paper's public code uses the L1 loss by default.</para>
/// <para>Both sides average the gradient over the same fixed plan as the other gradient methods:
/// <see cref="MethodSettings.Timesteps"/> evenly spaced timesteps × <see cref="MethodSettings.NoiseDraws"/> seeded noise draws
/// (the paper's query side: 100 × 16), the same draws for every training example and checkpoint. (The public code's
/// training side uses the one timestep the training step drew; one random timestep per example and checkpoint, which
/// stores built before this kept, made self-influence noisy.)</para>
/// <para>Gradients are projected to k = <see cref="MethodSettings.Dim"/> with the dense JL projector (the paper projects
/// nothing): inner products are kept to about ‖a‖‖b‖√(2/k). ReTrac's norms are of the unprojected gradients, computed exactly
/// while featurizing and kept in <c>norms.npy</c>; a zero gradient scores 0.</para>
/// <para>With Adam, η_c scales a preconditioned step; TracIn, as in the paper, uses the plain gradient.</para>
/// <para>Store: one feature store per checkpoint in <c>checkpoint-c/</c> (features.npy, meta.json, done.bitmap, norms.npy), then
/// source.json and method.json. TracIn and ReTrac stores hold the same data; method.json says which, so a copy of a finished
/// TracIn store becomes a ReTrac store by building it again with the other method (nothing is recomputed).</para>
/// </remarks>
internal sealed class TracInMethod(string name, bool renormalize) : AttributionMethod<TracInSettings>
{
    /// <inheritdoc/>
    public override string Name { get; } = name;

    /// <inheritdoc/>
    public override MethodCapabilities Capabilities { get; } = new() { ConditionalModels = true, NeedsCheckpoints = true };

    /// <summary>True for ReTrac: each training gradient divided by its norm.</summary>
    public bool Renormalize { get; } = renormalize;

    /// <inheritdoc/>
    public override string Summary => Renormalize
        ? "Σ over checkpoints of η·(query gradient · unit-norm training gradient), both averaged over K timesteps"
        : "Σ over checkpoints of η·(query gradient · training gradient), both averaged over K timesteps";

    /// <summary>The feature store folder of checkpoint <paramref name="index"/> inside a method store.</summary>
    public static string CheckpointFolder(int index) => "checkpoint-" + index.ToString(CultureInfo.InvariantCulture);

    /// <summary>The meta.json label of the per-checkpoint feature stores (the same for TracIn and ReTrac).</summary>
    private const string FeatureLabel = "tracin";

    /// <exception cref="UserInputException">No checkpoints, a projector other than dense, or a measurement other than the loss.</exception>
    /// <exception cref="ModelFileException">A checkpoint's model.json lacks its step and learning rate, or its geometry differs from the model's.</exception>
    protected override void Build(MethodBuildRequest request, TracInSettings settings, CancellationToken cancel)
    {
        if (settings.Projector != ProjectorKind.Dense)
        {
            throw new SettingException("Projector", settings.Projector, $"{Name} needs exact gradient norms, which only the dense projection forms", ProjectorKind.Dense);
        }
        if (settings.Measurement is not (null or MeasurementKind.Loss))
        {
            throw new SettingException("Measurement", settings.Measurement, $"{Name} differentiates the training loss", MeasurementKind.Loss);
        }
        var model = ModelDirectory.Open(request.ModelDirectory);
        var checkpoints = OpenCheckpoints(settings.Checkpoints, Name);
        foreach (var (_, dir, _) in checkpoints)
        {
            var m = dir.Metadata;
            if (m.Channels != model.Metadata.Channels || m.ImageSize != model.Metadata.ImageSize || m.Schedule != model.Metadata.Schedule)
            {
                throw new ModelFileException(
                    $"{Path.Combine(dir.Path, ModelMetadata.FileName)}: images {m.Channels}×{m.ImageSize}² and schedule {m.Schedule} differ " +
                    $"from the model's ({model.Metadata.Channels}×{model.Metadata.ImageSize}², {model.Metadata.Schedule}) in {model.Path}");
            }
        }
        var projection = new ProjectionSettings(ProjectorKind.Dense, settings.Distribution, settings.Dim, settings.ProjectionSeed);
        var progress = request.Progress;
        for (int c = 0; c < checkpoints.Count; c++)
        {
            string stage = $"checkpoint {c + 1}/{checkpoints.Count} (step {checkpoints[c].Info.Step})";
            var options = new FeaturizeOptions
            {
                ModelDirectory = checkpoints[c].Path,
                Data = request.Data,
                Subset = request.Source.Subset,
                Plan = new FeaturizationPlan(FeaturizationPlan.Evenly(model.CreateSchedule().Timesteps, settings.Timesteps), settings.NoiseDraws, settings.NoiseSeed, MeasurementKind.Loss),
                Projection = projection,
                DType = settings.DType,
                Method = FeatureLabel,
                OutDirectory = Path.Combine(request.OutDirectory, CheckpointFolder(c)),
                BatchSize = settings.BatchSize,
                Session = request.Session,
                GradientNorms = true,
            };
            using (TrakEngine.Featurize(options, progress is null ? null : new SyncProgress<(long Done, long Total)>(p => progress.Report(new MethodProgress(stage, p.Done, p.Total))), cancel))
            {
            }
        }
        request.Source.Save(request.OutDirectory);
        var record = new TracInStoreSettings(
            checkpoints.Select(c => new TracInCheckpoint(c.Path, c.Info.Step, c.Info.LearningRate)).ToList(),
            FeaturizationPlan.Evenly(model.CreateSchedule().Timesteps, settings.Timesteps),
            settings.NoiseDraws,
            settings.NoiseSeed,
            settings.Seed,
            projection);
        MethodManifest.Of(Name, record).Save(request.OutDirectory);
    }

    /// <summary>Opens the checkpoint folders and reads each one's step and learning rate.</summary>
    private static List<(string Path, ModelDirectory Directory, CheckpointInfo Info)> OpenCheckpoints(IReadOnlyList<string> paths, string method)
    {
        if (paths.Count == 0)
        {
            throw new UserInputException(
                $"method {method} needs training checkpoints (Checkpoints: model folders with forward.onnx and model.json, oldest first). " +
                "Make them with 'train --keep-checkpoints-every N' and then 'export --checkpoint RUN --step S --out DIR' for each kept step " +
                "(tools/make-fm16-checkpoints.sh does this for models/fm16, into models/fm16/checkpoints/step-NNNN)");
        }
        return paths.Select(p =>
        {
            var dir = ModelDirectory.Open(p);
            var info = dir.Metadata.Checkpoint
                ?? throw new ModelFileException($"{Path.Combine(dir.Path, ModelMetadata.FileName)}: field 'checkpoint' (step and learning rate) is missing: " +
                    "export the checkpoint with 'export --step S'");
            if (!(info.LearningRate > 0) || info.Step < 0)
            {
                throw new ModelFileException($"{Path.Combine(dir.Path, ModelMetadata.FileName)}: field 'checkpoint': " +
                    $"expected step ≥ 0 and learningRate > 0, found {info.Step} and {info.LearningRate}");
            }
            return (p, dir, info);
        }).ToList();
    }

    /// <exception cref="UserInputException">The store is not complete (no method.json) or its settings do not fit.</exception>
    /// <exception cref="AttributionException">A checkpoint changed since the store was built.</exception>
    public override IAttributionScorer Open(string storeDirectory, string modelDirectory, SessionSettings session)
    {
        ArgumentNullException.ThrowIfNull(storeDirectory);
        var manifest = MethodManifest.Require(storeDirectory, Name);
        var settings = manifest.SettingsAs<TracInStoreSettings>(storeDirectory);
        if (settings.Checkpoints is not { Count: > 0 })
        {
            throw new UserInputException($"{Path.Combine(storeDirectory, StoreFiles.Method)}: field 'settings.checkpoints' is empty");
        }
        var parts = new List<CheckpointScorer>();
        try
        {
            for (int c = 0; c < settings.Checkpoints.Count; c++)
            {
                parts.Add(CheckpointScorer.Open(Path.Combine(storeDirectory, CheckpointFolder(c)), settings, c, Renormalize, session));
                if (parts[c].Store.Rows != parts[0].Store.Rows)
                {
                    throw new StoreFormatException($"{parts[c].Store.Directory}: {parts[c].Store.Rows} rows; {parts[0].Store.Directory} has {parts[0].Store.Rows}");
                }
            }
        }
        catch
        {
            parts.ForEach(p => p.Dispose());
            throw;
        }
        return new Scorer(Name, parts);
    }

    /// <summary>One checkpoint's part of the score: its store, its query features and (ReTrac) its training-gradient norms.</summary>
    private sealed class CheckpointScorer : IDisposable
    {
        private readonly GradientModel _model;
        private readonly float _learningRate;
        private readonly float[]? _norms;

        private CheckpointScorer(FeatureStore store, GradientModel model, float learningRate, float[]? norms)
        {
            Store = store;
            _model = model;
            _learningRate = learningRate;
            _norms = norms;
        }

        public FeatureStore Store { get; }

        public static CheckpointScorer Open(string directory, TracInStoreSettings settings, int index, bool renormalize, SessionSettings session)
        {
            var checkpoint = settings.Checkpoints[index];
            var store = FeatureStore.Open(directory);
            GradientModel? model = null;
            try
            {
                var plan = new FeaturizationPlan(settings.QueryTimesteps, settings.NoiseDraws, settings.NoiseSeed, MeasurementKind.Loss);
                model = new GradientModel(checkpoint.Directory, plan, settings.Projection, session);
                model.RequireStore(store);
                float[]? norms = null;
                if (renormalize)
                {
                    norms = SidecarMatrix.ReadAll(Path.Combine(directory, StoreFiles.Norms), store.Rows, 1);
                    // A zero gradient has no influence: dividing by ∞ gives it score 0 instead of NaN.
                    for (int i = 0; i < norms.Length; i++)
                    {
                        norms[i] = norms[i] > 0 ? norms[i] : float.PositiveInfinity;
                    }
                }
                return new CheckpointScorer(store, model, (float)checkpoint.LearningRate, norms);
            }
            catch
            {
                model?.Dispose();
                store.Dispose();
                throw;
            }
        }

        /// <summary>Adds η_c φ_q · φᵢ (ReTrac: divided by ‖∇L(xᵢ)‖) for every query and row to <paramref name="total"/>.</summary>
        public void AddScores(ReadOnlySpan<float> images, int count, Span<float> total, ReadOnlySpan<long> conditions)
        {
            int k = Store.Dim;
            var phi = new float[count * k];
            _model.Extractor.Extract(images, count, phi, conditions: conditions);
            TensorPrimitives.Multiply(phi, _learningRate, phi);
            var part = new float[total.Length];
            Store.Scores(phi, count, part);
            int n = checked((int)Store.Rows);
            for (int q = 0; q < count && _norms is not null; q++)
            {
                var row = part.AsSpan(q * n, n);
                TensorPrimitives.Divide(row, _norms, row);
            }
            TensorPrimitives.Add(total, part, total);
        }

        public void Dispose()
        {
            _model.Dispose();
            Store.Dispose();
        }
    }

    /// <summary>The query side: per checkpoint, the query's averaged gradient projected, one scan of that checkpoint's store.</summary>
    private sealed class Scorer(string method, List<CheckpointScorer> parts) : IAttributionScorer
    {
        public string Method { get; } = method;

        public long Rows => parts[0].Store.Rows;

        public float[] Scores(IReadOnlyList<AttributionQuery> queries, CancellationToken cancel = default)
        {
            var images = TrakMethod.Images(queries);
            var conditions = TrakMethod.Conditions(queries);
            var total = new float[checked(queries.Count * Rows)];
            foreach (var part in parts)
            {
                cancel.ThrowIfCancellationRequested();
                part.AddScores(images, queries.Count, total, conditions);
            }
            return total;
        }

        public void Dispose() => parts.ForEach(p => p.Dispose());
    }
}
