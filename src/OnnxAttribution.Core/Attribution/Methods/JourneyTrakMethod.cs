using System.Globalization;
using System.Text.Json.Nodes;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime.Sampling;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// Journey-TRAK (Georgiev et al. 2023, "The Journey, Not the Destination", Sec. 3: attributing each step t of the
/// sampling trajectory rather than the final image). For each timestep t of an S-step DDIM sampler the store holds a
/// TRAK feature store of the training set measured at t alone (plan {t} × noise draws) with its own kernel inverse, and
/// step t of a query is scored τ_t(q)ᵢ = φ_t(q)ᵀ (Φ_tᵀΦ_t + λI)⁻¹ φ_t(xᵢ) (TRAK, Park et al. 2023, Eq. 8 with one model).
/// </summary>
/// <remarks>
/// <para>The query function at step t is the denoising loss of the trajectory's state: ‖ε* − ε_θ(x̂_t, t)‖²/D with the
/// target ε* = (x̂_t − √ᾱ_t x̂₀)/√(1−ᾱ_t), x̂₀ the trajectory's final image (the noise that would take x̂₀ to x̂_t).
/// With <see cref="MethodSettings.Measurement"/> set to another measurement, query and training rows use that one.</para>
/// <para>Store layout: <c>source.json</c>, one TRAK feature store per step in sub-folders named by timestep
/// (<c>t0999/</c>, …, each with meta.json, features.npy and preconditioner.bin), and <c>method.json</c> last.
/// Every step's plan has the same noise seed, so a training image is noised with the same ε at every step; steps are
/// scored separately, so this only correlates the per-step estimates that <see cref="IAttributionScorer.Scores"/> averages.</para>
/// </remarks>
public sealed class JourneyTrakMethod : AttributionMethod<JourneyTrakSettings>, IDampedMethod
{
    /// <inheritdoc/>
    public override string Name => "journey-trak";

    /// <inheritdoc/>
    public override MethodCapabilities Capabilities { get; } = new() { ConditionalModels = true };

    /// <inheritdoc/>
    public double DefaultDamping => LdsChosenDamping.JourneyTrak;

    /// <inheritdoc/>
    public override string Summary => "TRAK per step of the query's DDIM trajectory: the denoising loss of x̂_t against training features at the same t";

    /// <summary>
    /// The timesteps attributed: those an S-step DDIM sampler visits (<see cref="SamplingTimesteps.Evenly"/>, the
    /// sampler's own choice), in sampling order.
    /// </summary>
    /// <exception cref="UserInputException"><paramref name="journeySteps"/> is not in 1..T.</exception>
    public static IReadOnlyList<long> Steps(int trainTimesteps, int journeySteps)
    {
        if (journeySteps < 1 || journeySteps > trainTimesteps)
        {
            throw new UserInputException($"journey steps is {journeySteps}; expected 1..{trainTimesteps} (the schedule's timesteps)");
        }
        return SamplingTimesteps.Evenly(trainTimesteps, journeySteps);
    }

    /// <summary>The sub-folder of step <paramref name="timestep"/>: "t" and the timestep, zero-padded to at least four digits (t0999).</summary>
    public static string StepFolder(long timestep, int trainTimesteps)
    {
        int width = Math.Max(4, (trainTimesteps - 1).ToString(CultureInfo.InvariantCulture).Length);
        return "t" + timestep.ToString("D" + width.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Builds one TRAK store per step with <see cref="TrakEngine.Featurize(FeaturizeOptions, GradientModel, IProgress{ValueTuple{long, long}}?, CancellationToken)"/>
    /// on one shared model, finalizing each as it completes: a killed build continues in the step it stopped in, and
    /// a step whose kernel inverse is already written is not factorised again.
    /// </summary>
    /// <exception cref="UserInputException">The folder already holds a complete Journey-TRAK store with other settings.</exception>
    protected override void Build(MethodBuildRequest request, JourneyTrakSettings settings, CancellationToken cancel)
    {
        int trainTimesteps = ModelDirectory.Open(request.ModelDirectory).CreateSchedule().Timesteps;
        var steps = Steps(trainTimesteps, settings.JourneySteps);
        var measurement = settings.Measurement ?? MeasurementKind.Loss;
        double damping = settings.Damping ?? DefaultDamping;
        var manifest = MethodManifest.Of(Name, new JourneyStoreSettings(measurement.ToString().ToLowerInvariant(), damping, trainTimesteps, steps.ToArray()));
        if (MethodManifest.TryLoad(request.OutDirectory) is { } existing)
        {
            if (existing.Method == Name && JsonNode.DeepEquals(existing.Settings, manifest.Settings))
            {
                return;
            }
            throw new UserInputException($"{request.OutDirectory} already holds a complete {existing.Method} store with other settings; build into another folder");
        }
        Directory.CreateDirectory(request.OutDirectory);
        request.Source.Save(request.OutDirectory);

        var projection = new ProjectionSettings(settings.Projector, settings.Distribution, settings.Dim, settings.ProjectionSeed);
        FeaturizationPlan PlanAt(long t) => new([t], settings.NoiseDraws, settings.NoiseSeed, measurement);
        long rows = request.Data.Count, total = rows * steps.Count;
        var progress = request.Progress;
        using var model = new GradientModel(request.ModelDirectory, PlanAt(steps[0]), projection, FeaturizeOptions.StreamSessionOf(request.Session, 0));
        for (int j = 0; j < steps.Count; j++)
        {
            long offset = j * rows;
            var directory = Path.Combine(request.OutDirectory, StepFolder(steps[j], trainTimesteps));
            var options = new FeaturizeOptions
            {
                ModelDirectory = request.ModelDirectory,
                Data = request.Data,
                Subset = request.Source.Subset,
                Plan = PlanAt(steps[j]),
                Projection = projection,
                DType = settings.DType,
                Method = Name,
                OutDirectory = directory,
                BatchSize = settings.BatchSize,
                Session = request.Session,
            };
            int dim;
            long heldRows;
            using (var store = TrakEngine.Featurize(options, model, progress is null ? null
                : new SyncProgress<(long Done, long Total)>(p => progress.Report(new MethodProgress("featurize", offset + p.Done, total))), cancel))
            {
                dim = store.Dim;
                heldRows = store.Rows;
            }
            cancel.ThrowIfCancellationRequested();
            if (!IsFinalized(directory, dim, heldRows, damping))
            {
                PreconditionerBuilder.Finalize(directory, damping, progress is null ? null
                    : new SyncProgress<(long Done, long Total)>(p => progress.Report(new MethodProgress("finalize", offset + p.Done, total))));
            }
        }
        manifest.Save(request.OutDirectory);
    }

    /// <summary>Whether a step's preconditioner.bin is written, whole, for these features with this damping (read from its header).</summary>
    private static bool IsFinalized(string directory, int dim, long rows, double damping) =>
        Preconditioner.IsComplete(Path.Combine(directory, StoreFiles.Preconditioner), dim, rows, PreconditionerBuilder.StoreFingerprint(directory), damping);

    /// <summary>Finalizes every step's features anew with <paramref name="relativeDamping"/> (<see cref="PreconditionerBuilder.Redamp"/>).</summary>
    public void Redamp(string storeDirectory, double relativeDamping, GramCache grams)
    {
        var settings = MethodManifest.Require(storeDirectory, Name).SettingsAs<JourneyStoreSettings>(storeDirectory);
        var steps = (settings.Steps ?? []).Select(t => Path.Combine(storeDirectory, StepFolder(t, settings.TrainTimesteps))).ToList();
        PreconditionerBuilder.Redamp(storeDirectory, Name, relativeDamping, steps, grams);
    }

    /// <summary>Opens the step stores on one shared model (one pair of ONNX Runtime sessions for every step).</summary>
    /// <exception cref="UserInputException">The folder is not a complete Journey-TRAK store.</exception>
    public override IAttributionScorer Open(string storeDirectory, string modelDirectory, SessionSettings session)
    {
        var manifest = MethodManifest.Require(storeDirectory, Name);
        var settings = manifest.SettingsAs<JourneyStoreSettings>(storeDirectory);
        if (settings.Steps is not { Length: > 0 })
        {
            throw new UserInputException($"{Path.Combine(storeDirectory, StoreFiles.Method)}: field 'settings.steps' is empty");
        }
        var schedule = ModelDirectory.Open(modelDirectory).CreateSchedule();
        if (schedule.Timesteps != settings.TrainTimesteps)
        {
            throw new UserInputException($"{Path.Combine(storeDirectory, StoreFiles.Method)}: field 'settings.trainTimesteps' is {settings.TrainTimesteps}; " +
                $"the model {modelDirectory} has T = {schedule.Timesteps}");
        }
        var folders = settings.Steps.Select(t => Path.Combine(storeDirectory, StepFolder(t, settings.TrainTimesteps))).ToArray();
        GradientModel? model = null;
        var scorers = new List<TrakScorer>();
        try
        {
            using (var first = Store.FeatureStore.Open(folders[0]))
            {
                model = new GradientModel(modelDirectory, TrakScorer.PlanOf(first), TrakScorer.ProjectionOf(first), session);
            }
            foreach (var folder in folders)
            {
                var scorer = TrakScorer.Open(folder, model);
                scorers.Add(scorer);
                if (scorer.Store.Rows != scorers[0].Store.Rows)
                {
                    throw new UserInputException($"{folder}: {scorer.Store.Rows} rows; {folders[0]} has {scorers[0].Store.Rows}");
                }
            }
            return new Scorer(Name, settings.Steps, model, scorers, schedule);
        }
        catch
        {
            scorers.ForEach(x => x.Dispose());
            model?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The state and target noise of step <paramref name="timestep"/> of a trajectory: x̂_t as recorded, and
    /// ε* = (x̂_t − √ᾱ_t x̂₀)/√(1−ᾱ_t) with x̂₀ the trajectory's final image (computed in float64).
    /// </summary>
    /// <exception cref="UserInputException">The trajectory does not pass through <paramref name="timestep"/> or has another schedule length.</exception>
    public static (float[] Noisy, float[] TargetNoise) StepInput(Trajectory trajectory, long timestep, NoiseSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(trajectory);
        ArgumentNullException.ThrowIfNull(schedule);
        int index = StateIndex(trajectory, timestep, schedule);
        var noisy = trajectory.State(index).ToArray();
        var final = trajectory.Final;
        double ab = schedule.AlphaBars[timestep], a = Math.Sqrt(ab), s = Math.Sqrt(1 - ab);
        var target = new float[noisy.Length];
        for (int i = 0; i < target.Length; i++)
        {
            target[i] = (float)((noisy[i] - a * final[i]) / s);
        }
        return (noisy, target);
    }

    /// <summary>
    /// The model's prediction of the clean image at each step, x̂₀ = (x̂_t − √(1−ᾱ_t) ε_θ(x̂_t, t))/√ᾱ_t clipped to
    /// [-1, 1] (what the sampler saw at that step), for pictures; a query without a trajectory gets its image at every step.
    /// </summary>
    /// <returns><paramref name="timesteps"/>.Count images, C·H·W each, concatenated.</returns>
    public static float[] PredictedImages(IDenoiser denoiser, NoiseSchedule schedule, AttributionQuery query, IReadOnlyList<long> timesteps)
    {
        ArgumentNullException.ThrowIfNull(denoiser);
        ArgumentNullException.ThrowIfNull(schedule);
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(timesteps);
        int d = query.Image.Length;
        var result = new float[timesteps.Count * d];
        for (int j = 0; j < timesteps.Count; j++)
        {
            var dst = result.AsSpan(j * d, d);
            if (query.Trajectory is not { } trajectory)
            {
                query.Image.CopyTo(dst);
                continue;
            }
            long t = timesteps[j];
            var xt = trajectory.State(NamingQuery(query, () => StateIndex(trajectory, t, schedule))).ToArray();
            var eps = new float[d];
            denoiser.Predict(xt, [t], query.Condition is long c ? [c] : [], 1, eps);
            double ab = schedule.AlphaBars[t], a = Math.Sqrt(ab), s = Math.Sqrt(1 - ab);
            for (int i = 0; i < d; i++)
            {
                dst[i] = (float)Math.Clamp((xt[i] - s * eps[i]) / a, -1.0, 1.0);
            }
        }
        return result;
    }

    /// <summary>Runs <paramref name="step"/>, prefixing any <see cref="UserInputException"/> with the query it concerns.</summary>
    private static T NamingQuery<T>(AttributionQuery query, Func<T> step)
    {
        try
        {
            return step();
        }
        catch (UserInputException e)
        {
            throw new UserInputException($"query '{query.Label}': {e.Message}", e);
        }
    }

    private static int StateIndex(Trajectory trajectory, long timestep, NoiseSchedule schedule)
    {
        if (trajectory.TrainTimesteps != schedule.Timesteps)
        {
            throw new UserInputException($"the query's trajectory indexes a schedule of T = {trajectory.TrainTimesteps} timesteps; the model has T = {schedule.Timesteps}");
        }
        for (int i = 0; i < trajectory.Steps; i++)
        {
            if (trajectory.Timesteps[i] == timestep)
            {
                return i;
            }
        }
        throw new UserInputException($"the query's trajectory ({trajectory.Steps} steps) does not pass through timestep {timestep}; " +
            "sample it with a number of steps that is a multiple of the store's journey steps");
    }

    /// <summary>Scores every step of a query against that step's store; the overall score is the mean over steps.</summary>
    private sealed class Scorer(string method, long[] steps, GradientModel model, IReadOnlyList<TrakScorer> stepScorers, NoiseSchedule schedule) : IStepwiseScorer
    {
        public string Method { get; } = method;

        public long Rows => stepScorers[0].Store.Rows;

        public IReadOnlyList<long> Steps { get; } = steps;

        /// <summary>
        /// Step j, all queries in one scan of the step's store: a query with a trajectory is scored by the features of
        /// (x̂_t, ε*) at t (<see cref="StepInput"/>); one without (a plain image) by the image noised with the step store's
        /// own plan, x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε averaged over its draws.
        /// </summary>
        public float[] StepScores(IReadOnlyList<AttributionQuery> queries, CancellationToken cancel = default)
        {
            ArgumentNullException.ThrowIfNull(queries);
            int rows = checked((int)Rows), s = steps.Length;
            var result = new float[checked(queries.Count * s * rows)];
            var traced = Enumerable.Range(0, queries.Count).Where(q => queries[q].Trajectory is not null).ToArray();
            var plain = Enumerable.Range(0, queries.Count).Where(q => queries[q].Trajectory is null).ToArray();
            var plainImages = plain.SelectMany(q => queries[q].Image).ToArray();
            for (int j = 0; j < s; j++)
            {
                cancel.ThrowIfCancellationRequested();
                var step = stepScorers[j];
                if (traced.Length > 0)
                {
                    var inputs = traced.Select(q => NamingQuery(queries[q], () => StepInput(queries[q].Trajectory!, steps[j], schedule))).ToList();
                    var noisy = inputs.SelectMany(x => x.Noisy).ToArray();
                    var target = inputs.SelectMany(x => x.TargetNoise).ToArray();
                    var tracedConditions = TrakMethod.Conditions(traced.Select(q => queries[q]).ToList());
                    Place(step.Scores(step.Extractor.Source.Noisy(noisy, target, steps[j], traced.Length, tracedConditions)), traced, j);
                }
                if (plain.Length > 0)
                {
                    Place(step.Scores(plainImages, plain.Length, TrakMethod.Conditions(plain.Select(q => queries[q]).ToList())), plain, j);
                }
            }
            return result;

            // Row i of a step's scores belongs to query which[i].
            void Place(float[] scores, int[] which, int j)
            {
                for (int i = 0; i < which.Length; i++)
                {
                    scores.AsSpan(i * rows, rows).CopyTo(result.AsSpan(((which[i] * s) + j) * rows, rows));
                }
            }
        }

        public float[] Scores(IReadOnlyList<AttributionQuery> queries, CancellationToken cancel = default)
        {
            ArgumentNullException.ThrowIfNull(queries);
            return IStepwiseScorer.MeanOverSteps(StepScores(queries, cancel), queries.Count, steps.Length, Rows);
        }

        public void Dispose()
        {
            foreach (var s in stepScorers)
            {
                s.Dispose();
            }
            model.Dispose();
        }
    }
}

/// <summary>The settings a Journey-TRAK store records in method.json (the per-step plans are in each step's meta.json).</summary>
/// <param name="Measurement">The measurement differentiated ("loss" or "square").</param>
/// <param name="Damping">λ relative to the mean diagonal of each step's Φ_tᵀΦ_t.</param>
/// <param name="TrainTimesteps">T of the model's schedule.</param>
/// <param name="Steps">The attributed timesteps in sampling order.</param>
internal sealed record JourneyStoreSettings(string Measurement, double Damping, int TrainTimesteps, long[] Steps);
