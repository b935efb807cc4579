using System.Globalization;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Evaluation;
using OnnxAttribution.Imaging;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime.Sampling;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Training.Evaluation;

/// <summary>
/// The LDS protocol of docs/results/lds.md as one resumable run: reference and subset models trained (or reused), each
/// method's stores built and its damping chosen on validation queries, the test queries scored, the LDS with its interval,
/// permutation test and noise ceiling written to lds{point}.json and .md (<see cref="LdsReportWriter"/>).
/// </summary>
public static class LdsRun
{
    /// <summary>
    /// Runs (or continues) an LDS evaluation into <see cref="LdsOptions.Out"/>: trains what is missing, measures, builds
    /// and scores every method, chooses each damping on the validation queries, and writes lds*.json and lds*.md.
    /// </summary>
    /// <exception cref="UserInputException">The options do not fit the folder's earlier run, or a method cannot be built with them.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancel"/> fired; everything finished so far is kept.</exception>
    public static EvaluationReport Run(LdsOptions o, CancellationToken cancel = default)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var timings = new Dictionary<string, double>(StringComparer.Ordinal);
        var methods = o.Methods.Select(m => m.Trim()).Where(m => m.Length > 0).ToList();
        foreach (var m in methods)
        {
            AttributionMethods.Find(m);
        }
        foreach (var (setting, value) in new[] { ("SubsetSeeds", o.SubsetSeeds), ("ValidationQueries", o.ValidationQueries), ("Queries", o.Queries) })
        {
            if (value < 1)
            {
                throw new SettingException(setting, value, "must be at least 1");
            }
        }
        if (o.Model is not null && o.ReferenceModels > 1)
        {
            throw new SettingException("ReferenceModels", o.ReferenceModels, "trains the reference models here; with a model given, only that one reference is attributed", 1);
        }
        foreach (var m in methods)
        {
            AttributionMethods.CheckProjector(AttributionMethods.Find(m), o.Projector); // before hours of training, not after the other methods' scores
        }
        var grid = o.DampingGrid.ToList();
        if (grid.Count == 0 || grid.Any(l => !(l > 0)))
        {
            throw new SettingException("DampingGrid", string.Join(',', grid), "expected positive values");
        }
        var recipe = o.Recipe;
        var data = new Core.Data.DatasetLocator().Load(o.Data, o.Subset, null);
        // A folder started before --subset-seeds (its settings.json has no 'subsetSeeds') keeps its models as seed 0.
        bool legacySeedZero = LegacySeedZero(o.Out);
        EvaluationFolder.CheckSettings(o.Out, new
        {
            kind = "lds",
            data = o.Data,
            subset = o.Subset,
            datasetFingerprint = data.Fingerprint,
            model = o.Model,
            subsetModels = o.SubsetModels,
            subsetSeeds = o.SubsetSeeds,
            legacySeedZero,
            alpha = o.Alpha,
            queries = o.Queries,
            validationQueries = o.ValidationQueries,
            dampingGrid = grid,
            seed = o.Seed,
            recipe,
            measureTimesteps = o.MeasureTimesteps,
            measureDraws = o.MeasureDraws,
            samplingSteps = o.SamplingSteps,
            journeySteps = o.JourneySteps,
        }, "subsetModels", "subsetSeeds", "legacySeedZero", "validationQueries", "dampingGrid", "journeySteps");
        if (o.QueryTimesteps != 0 && methods.FirstOrDefault(m => !AttributionMethods.QueryTimestepMethods.Contains(m)) is { } other)
        {
            throw new SettingException("QueryTimesteps", o.QueryTimesteps, $"method {other} does not use it (only {string.Join(", ", AttributionMethods.QueryTimestepMethods)} do)");
        }
        var session = new SessionSettings(ExecutionDevice.Cpu, o.Threads) { QueryTimesteps = o.QueryTimesteps };

        var references = TrainReferences(o, recipe, data, methods, timings, cancel);
        var ground = Ground(o, recipe, data, references, legacySeedZero, session, timings, cancel);

        // Every method's scores: damping chosen on the validation queries, then the test queries once.
        var rows = new List<LdsRow>();
        List<JourneyStepRow>? journeySteps = null;
        var chosenScores = new Dictionary<string, (float[] Validation, float[] Test)>(StringComparer.Ordinal);
        foreach (var name in methods)
        {
            cancel.ThrowIfCancellationRequested();
            var (methodRows, steps) = ScoreMethod(o, name, ground, data, grid, session, chosenScores, cancel);
            rows.AddRange(methodRows);
            journeySteps = steps ?? journeySteps;
        }
        rows.AddRange(o.Combinations.Select(c => LdsScoring.ScoreCombination(o, c, ground, data.Count, rows, chosenScores)));
        return WriteLdsResult(o, data, ground, grid, recipe, rows, journeySteps, timings, clock.Elapsed.TotalSeconds);
    }

    /// <summary>The seed stream of the reference models after the first (which trains with --seed).</summary>
    internal const string ReferenceSeedStream = "lds reference model";

    /// <summary>
    /// The R reference models, trained here unless done (or --model's one): reference r = 0 in reference/ with --seed,
    /// r ≥ 1 in reference-r/ with seed <see cref="Primitives.SeedStreams.Derive"/>(--seed, "lds reference model", r, 0).
    /// Each keeps five checkpoints for TracIn/ReTrac.
    /// </summary>
    internal static List<string> TrainReferences(LdsOptions o, TrainingRecipe recipe, Core.Data.ImageDataset data, List<string> methods, Dictionary<string, double> timings,
        CancellationToken cancel)
    {
        if (o.Model is not null)
        {
            return [o.Model];
        }
        var directories = new List<string>();
        var bar = new EvaluationFolder.TrainingProgress(o.Observer, "reference models", o.ReferenceModels, recipe.Steps);
        for (int r = 0; r < o.ReferenceModels; r++)
        {
            string name = r == 0 ? "reference" : $"reference-{r}";
            var referenceDir = Path.Combine(o.Out, name);
            var referenceRun = Path.Combine(o.Out, name + "-run");
            long seed = r == 0 ? o.Seed : Primitives.SeedStreams.Derive(o.Seed, ReferenceSeedStream, r, 0);
            // A reference keeps five checkpoints for TracIn/ReTrac (keeping them does not change the weights).
            var referenceRecipe = recipe with { KeepCheckpointsEvery = Math.Max(1, recipe.Steps / TracInCheckpoints) };
            RecipeTrainer.TrainAndExport(referenceRecipe, data, null, seed, o.Subset, referenceRun, referenceDir, withVjp: true, bar.For(r), cancel);
            if (methods.Any(m => AttributionMethods.Find(m).Capabilities.NeedsCheckpoints))
            {
                try
                {
                    RecipeTrainer.ExportKeptCheckpoints(referenceRecipe, referenceRun, referenceDir);
                }
                catch (ModelFileException e)
                {
                    throw new UserInputException($"{referenceRun}: tracin/retrac use {TracInCheckpoints} checkpoints of the reference, " +
                        $"kept every {referenceRecipe.KeepCheckpointsEvery} steps, and this run did not keep them (it was trained by an earlier version): " +
                        $"move {referenceDir}, {referenceRun} and {Path.Combine(o.Out, "stores")} aside to train the reference again, " +
                        $"or leave tracin and retrac out ({e.Message})", e);
                }
            }
            if (r == 0)
            {
                timings["trainReferenceSeconds"] = TrainingRunInfo.Load(referenceRun).TrainSeconds;
            }
            directories.Add(referenceDir);
        }
        return directories;
    }

    /// <summary>
    /// For a conditional model, the condition each query is generated with and attributed under: test query q gets
    /// <see cref="Core.Data.Captions.EvaluationCondition"/>(q) (label q mod classes, or a text model's caption of class q mod C)
    /// and validation query v gets that of v, so every class is asked about equally often; null for an unconditional model.
    /// </summary>
    internal static QueryCondition? QueryLabels(ConditionSpec? condition, int queries, int validationQueries) =>
        condition is null ? null : new QueryCondition(
            [.. Enumerable.Range(0, queries).Select(q => Core.Data.Captions.EvaluationCondition(condition, q)),
             .. Enumerable.Range(0, validationQueries).Select(v => Core.Data.Captions.EvaluationCondition(condition, v))]);

    /// <summary>The subset models (trained where missing), the generated queries and every subset model's loss on them.</summary>
    internal static LdsGround Ground(LdsOptions o, TrainingRecipe recipe, Core.Data.ImageDataset data, List<string> references, bool legacySeedZero, SessionSettings session,
        Dictionary<string, double> timings, CancellationToken cancel)
    {
        var reference = ModelDirectory.Open(references[0]);
        // Subsets and their models: every subset trained with S seeds.
        var subsets = Lds.DrawSubsets(data.Count, o.SubsetModels, o.Alpha, o.Seed);
        var plan = SubsetModels.Plan(o.Out, o.Seed, subsets.Length, o.SubsetSeeds, legacySeedZero);
        JsonFile.Save(Path.Combine(o.Out, "subsets.json"), subsets.Select((s, j) => new
        {
            model = j,
            seeds = plan.Where(p => p.Subset == j).Select(p => new { seed = p.SeedIndex, trainingSeed = p.TrainingSeed, directory = Path.GetFileName(p.Directory) }),
            rows = s,
        }).ToList());
        var missing = plan.Where(m => !File.Exists(Path.Combine(m.Directory, ModelMetadata.FileName))).ToList();
        var progress = new EvaluationFolder.TrainingProgress(o.Observer, "subset models", Math.Max(1, missing.Count), recipe.Steps);
        SubsetModels.TrainMissing(missing, (i, m) => RecipeTrainer.TrainAndExport(recipe, data, subsets[m.Subset], m.TrainingSeed, $"lds subset {m.Subset} seed {m.SeedIndex}",
            m.RunDirectory, m.Directory, withVjp: false, progress.For(i), cancel), cancel);
        timings["trainSubsetModelSeconds"] = plan.Select(m => TrainingRunInfo.Load(m.RunDirectory).TrainSeconds).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average();

        // Test and validation queries, and the measured output of every subset model: its loss on each query, per seed.
        var testSeeds = EvaluationFolder.QuerySeeds(o.Queries);
        var validationSeeds = ValidationQuerySeeds(o.ValidationQueries);
        var allQueries = GeneratedQueries.Generate(reference, [.. testSeeds, .. validationSeeds], SamplerKind.Ddim, o.SamplingSteps, session, cancel,
            QueryLabels(reference.Metadata.Condition, o.Queries, o.ValidationQueries));
        var allConditions = TrakMethod.Conditions(allQueries);
        var queries = allQueries.Take(o.Queries).ToList();
        var validation = allQueries.Skip(o.Queries).ToList();
        var queryImages = TrakMethod.Images(queries);
        var allImages = TrakMethod.Images(allQueries);
        int c = reference.Metadata.Channels, size = reference.Metadata.ImageSize;
        ImageGrid.Write(Path.Combine(o.Out, "queries.png"), queryImages, o.Queries, c, size, size, new GridLayout(Math.Min(10, o.Queries), 4), queries.Select(q => (string?)q.Label).ToList());
        var measurePlan = new FeaturizationPlan(FeaturizationPlan.Evenly(reference.Metadata.Schedule.Timesteps, o.MeasureTimesteps), o.MeasureDraws, 1_000_003, MeasurementKind.Loss);
        int allCount = allQueries.Count;
        var perSeed = Enumerable.Range(0, o.SubsetSeeds).Select(s => EvaluationFolder.MeasureModels(o.Observer,
            Path.Combine(o.Out, "measured", $"loss-seed-{s}.npy"), subsets.Length, allCount, $"measure query losses (seed {s})", j =>
        {
            var model = ModelDirectory.Open(plan[(s * subsets.Length) + j].Directory);
            using var denoiser = model.OpenDenoiser(session);
            return DiffusionLoss.Measure(denoiser, model.CreateSchedule(), measurePlan, allImages, allCount, conditions: allConditions).Select(v => (float)v).ToArray();
        }, cancel).Select(v => (double)v).ToArray()).ToList();
        if (TrySecondsPerModel(Path.Combine(o.Out, "measured", "loss-seed-0.json")) is { } perModel)
        {
            timings["measureSecondsPerModel"] = perModel;
        }
        double[] Columns(double[] matrix, int from, int count) => Enumerable.Range(0, subsets.Length).SelectMany(j => matrix.Skip((j * allCount) + from).Take(count)).ToArray();
        var testPerSeed = perSeed.Select(m => Columns(m, 0, o.Queries)).ToList();
        var measuredLoss = NoiseCeiling.MeanOverSeeds(testPerSeed);
        var validationLoss = Columns(NoiseCeiling.MeanOverSeeds(perSeed), o.Queries, o.ValidationQueries);
        CeilingResult? ceiling = o.SubsetSeeds >= 2 ? NoiseCeiling.Measure(testPerSeed, subsets.Length, o.Queries, 100, o.Seed) : null;
        if (ceiling is not null)
        {
            o.Observer.Note($"noise ceiling √ρ_S: {100 * ceiling.Mean.Mean:F1}% [{100 * ceiling.Mean.Low:F1}, {100 * ceiling.Mean.High:F1}] " +
                $"(ρ_S {ceiling.MeanReliability.Mean:F3}, {ceiling.Splits} seed splits of {ceiling.HalfSize} against {ceiling.HalfSize})");
        }
        return new LdsGround(references, subsets, plan, queries, validation, measuredLoss, validationLoss, ceiling, size);
    }

    /// <summary>
    /// The folder-name suffix of this run's setting point and reference model r: "-{--point}" unless --point is empty,
    /// then "-reference-r" for r ≥ 1 (stores/, scores/ for the first reference of the unnamed point).
    /// </summary>
    internal static string PointSuffix(LdsOptions o, int reference) =>
        (o.Point.Length == 0 ? "" : "-" + o.Point) + (reference == 0 ? "" : string.Create(CultureInfo.InvariantCulture, $"-reference-{reference}"));

    /// <summary>The results' file stem: lds, then "-{--point}" for a named point, then "-R{R}" for R &gt; 1 reference models.</summary>
    internal static string ResultStem(LdsOptions o) =>
        "lds" + PointSuffix(o, 0) + (o.ReferenceModels > 1 ? string.Create(CultureInfo.InvariantCulture, $"-R{o.ReferenceModels}") : "");

    /// <summary>A method's stores (one per reference model; the ensemble's own folder) with the folders of their scores.</summary>
    internal static List<ReferenceStore> StoresOf(LdsOptions o, string name, LdsGround ground)
    {
        if (AttributionMethods.Find(name).Capabilities.OwnModels)
        {
            var ensemble = o.Ensemble ?? throw new SettingException("Ensemble", null, "method 'ensemble' needs a trained ensemble folder (train-ensemble on the same data and subset)");
            return [new ReferenceStore(ground.References[0], ensemble, Path.Combine(o.Out, "scores" + PointSuffix(o, 0)))];
        }
        return ground.References.Select((model, r) => new ReferenceStore(model, Path.Combine(o.Out, "stores" + PointSuffix(o, r), name), Path.Combine(o.Out, "scores" + PointSuffix(o, r)))).ToList();
    }

    /// <summary>
    /// One method's rows: its stores built where missing, its damping chosen on the validation queries (the scores being
    /// the mean over the reference models' stores at each λ), the test queries scored once at that λ.
    /// </summary>
    internal static (List<LdsRow> Rows, List<JourneyStepRow>? Steps) ScoreMethod(LdsOptions o, string name, LdsGround ground, Core.Data.ImageDataset data, List<double> grid,
        SessionSettings session, Dictionary<string, (float[] Validation, float[] Test)> chosenScores, CancellationToken cancel)
    {
        var stores = StoresOf(o, name, ground);
        double buildSeconds = stores.Sum(s => BuildStore(o, name, s.Store, s.Model, data, new StoreSource(s.Model, o.Data, o.Subset, ground.ImageSize), session, cancel));
        var damped = AttributionMethods.Find(name) as IDampedMethod;
        var grams = new GramCache();
        Scored Score(List<AttributionQuery> queries, double? damping, bool validation) => MeanOf(stores.Select(s => LdsScoring.ScoreCached(name, s.Store, s.Model, session, queries, data.Count,
            damping, damped, grams, validation ? Path.Combine(s.Scores, "validation") : s.Scores, perDamping: validation, cancel)).ToList());
        double ValidationLds(double? damping)
        {
            var scores = Score(ground.Validation, damping, validation: true).Scores;
            var perQuery = Lds.PerQuery(Lds.Predict(scores, o.ValidationQueries, data.Count, ground.Subsets), ground.ValidationLoss, o.ValidationQueries, ground.Subsets.Length);
            return perQuery.Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average();
        }
        Scored scored;
        double validationLds;
        double? chosen = null;
        IReadOnlyList<DampingPoint>? sweep = null;
        if (damped is not null)
        {
            var tuned = DampingTuning.Tune(grid, l => ValidationLds(l), l => Score(ground.Queries, l, validation: false));
            (scored, chosen, sweep) = (tuned.Test, tuned.Chosen, tuned.Sweep);
            validationLds = sweep.Single(p => p.Damping == tuned.Chosen).ValidationLds;
            // The stores are left at the chosen λ (the sweep may have left them at another), for what uses them next.
            foreach (var s in stores.Where(s => MethodManifest.Require(s.Store, name).Settings["damping"]?.GetValue<double>() != tuned.Chosen))
            {
                damped.Redamp(s.Store, tuned.Chosen, grams);
            }
            o.Observer.Note($"{name}: λ = {Lambda(chosen.Value)} chosen on {o.ValidationQueries} validation queries (validation LDS " +
                $"{string.Join(", ", sweep.Select(p => $"{Lambda(p.Damping)}: {100 * p.ValidationLds:F1}%"))})");
        }
        else
        {
            validationLds = ValidationLds(null);
            scored = Score(ground.Queries, null, validation: false);
        }
        grams.Clear();
        var scores = scored.Scores;
        if (o.Combinations.Any(c => c.Split('+', StringSplitOptions.TrimEntries).Contains(name, StringComparer.Ordinal)))
        {
            // Kept only for a combination that names the method (the validation scores at λ are read back from their file).
            chosenScores[name] = (Score(ground.Validation, chosen, validation: true).Scores, scores);
        }
        long storeBytes = stores.Sum(s => Directory.Exists(s.Store) ? new DirectoryInfo(s.Store).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length) : 0);
        var predicted = Lds.Predict(scores, o.Queries, data.Count, ground.Subsets);
        var perQuery = Lds.PerQuery(predicted, ground.MeasuredLoss, o.Queries, ground.Subsets.Length);
        var interval = Lds.Bootstrap(perQuery, 2000, o.Seed);
        var test = Lds.PermutationTest(predicted, ground.MeasuredLoss, o.Queries, ground.Subsets.Length, Permutations, o.Seed);
        double centred = Lds.PerQuery(Lds.Predict(Lds.RemoveQueryMean(scores, o.Queries, data.Count), o.Queries, data.Count, ground.Subsets), ground.MeasuredLoss, o.Queries, ground.Subsets.Length)
            .Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average();
        bool stepwise = scored.Timesteps is not null;
        var costs = new Costs(buildSeconds, buildSeconds / data.Count, scored.Seconds, 1000 * scored.Seconds / o.Queries, storeBytes);
        var setting = new PointSetting(o.Timesteps, o.NoiseDraws, o.Dim, stores.Count, o.QueryTimesteps, o.Projector.ToString().ToLowerInvariant());
        var ceiling = ground.Ceiling;
        // Journey-TRAK attributes the steps of the trajectory, not the final image: its own row measures that
        // (below); this one says how its mean over steps does on the final image's loss, the other rows' output.
        var rows = new List<LdsRow>
        {
            new(stepwise ? name + " (final image)" : name, "final image", interval, test, costs, perQuery)
            {
                QueryMeanRemoved = centred,
                QueryAgreement = Lds.QueryAgreement(scores, o.Queries, data.Count),
                ValidationLds = validationLds,
                Damping = chosen,
                DampingSweep = sweep,
                Ceiling = ceiling?.Mean.Mean,
                FractionOfCeiling = ceiling is { Mean.Mean: > 0 } ? interval.Mean / ceiling.Mean.Mean : null,
                Setting = setting,
                Command = o.CommandLine,
            },
        };
        o.Observer.Note($"{rows[^1].Method}: LDS {100 * interval.Mean:F1}% [{100 * interval.Low:F1}, {100 * interval.High:F1}] over {interval.Count} queries, permutation p = {test.P:F3}" +
            (ceiling is null ? "" : $", {100 * rows[^1].FractionOfCeiling:F0}% of the ceiling"));
        if (!stepwise)
        {
            return (rows, null);
        }
        var (row, steps) = StepwiseLds(o, name, scored.StepScores!, scored.Timesteps!, ground.References[0], session, ground.Queries, ground.Plan, ground.Subsets, data.Count, costs, cancel);
        rows.Add(row with { ValidationLds = validationLds, Damping = chosen, DampingSweep = sweep, Setting = setting, Command = o.CommandLine });
        o.Observer.Note($"{name}: per-step LDS {100 * row.Lds:F1}% [{100 * row.Low:F1}, {100 * row.High:F1}] (mean over {steps.Count} steps), permutation p = {row.P:F3}");
        return (rows, steps);
    }

    /// <summary>The mean of a method's scores over its reference models' stores (the seconds added up).</summary>
    internal static Scored MeanOf(IReadOnlyList<Scored> parts)
    {
        if (parts.Count == 1)
        {
            return parts[0];
        }
        static float[] Mean(IEnumerable<float[]> matrices, int count)
        {
            float[]? sum = null;
            foreach (var m in matrices)
            {
                sum ??= new float[m.Length];
                if (m.Length != sum.Length)
                {
                    throw new InvalidOperationException("the reference models' score matrices differ in size");
                }
                System.Numerics.Tensors.TensorPrimitives.Add(sum, m, sum);
            }
            System.Numerics.Tensors.TensorPrimitives.Divide(sum!, count, sum!);
            return sum!;
        }
        if (parts.Any(p => !(p.Timesteps ?? []).SequenceEqual(parts[0].Timesteps ?? [])))
        {
            throw new InvalidOperationException("the reference models' stepwise scores have different steps");
        }
        var steps = parts[0].StepScores is null ? null : Mean(parts.Select(p => p.StepScores!), parts.Count);
        return new Scored(Mean(parts.Select(p => p.Scores), parts.Count), steps, parts[0].Timesteps, parts.Sum(p => p.Seconds));
    }

    /// <summary>Writes lds{point}.json and lds{point}.md and reports them.</summary>
    internal static EvaluationReport WriteLdsResult(LdsOptions o, Core.Data.ImageDataset data, LdsGround ground, List<double> grid, TrainingRecipe recipe, List<LdsRow> rows,
        List<JourneyStepRow>? journeySteps, Dictionary<string, double> timings, double seconds)
    {
        var reference = ModelDirectory.Open(ground.References[0]);
        var ceiling = ground.Ceiling;
        var result = new LdsResultFile
        {
            Data = o.Data,
            Subset = o.Subset,
            N = data.Count,
            ImageSize = reference.Metadata.ImageSize,
            ModelParameters = reference.Metadata.Parameters.Sum(p => p.Shape.Aggregate(1L, (a, b) => a * b)),
            Reference = ground.References[0],
            ReferenceModels = ground.References.Count,
            Setting = new PointSetting(o.Timesteps, o.NoiseDraws, o.Dim, ground.References.Count, o.QueryTimesteps, o.Projector.ToString().ToLowerInvariant()),
            SubsetModels = ground.Subsets.Length,
            SubsetSeeds = o.SubsetSeeds,
            Alpha = o.Alpha,
            Queries = o.Queries,
            QuerySeeds = $"0 … {o.Queries - 1}",
            ValidationQueries = o.ValidationQueries,
            ValidationQuerySeeds = $"2^32 + 0 … 2^32 + {o.ValidationQueries - 1}",
            DampingGrid = grid,
            Recipe = recipe,
            Measured = $"diffusion loss over {o.MeasureTimesteps} timesteps × {o.MeasureDraws} noise draws, mean over {o.SubsetSeeds} training seeds per subset",
            Ceiling = ceiling is null ? null : new LdsCeiling(ceiling.Mean.Mean, ceiling.Mean.Low, ceiling.Mean.High, ceiling.MeanReliability.Mean,
                ceiling.MeanReliability.Low, ceiling.MeanReliability.High, ceiling.Splits, ceiling.HalfSize, ceiling.Ceiling),
            Methods = rows,
            Permutations = Permutations,
            JourneySteps = journeySteps,
            Timings = timings,
            Command = o.CommandLine,
            Seconds = seconds,
        };
        var stem = ResultStem(o);
        var jsonPath = Path.Combine(o.Out, stem + ".json");
        JsonFile.Save(jsonPath, result);
        var summary = $"N = {data.Count}, M = {ground.Subsets.Length} × S = {o.SubsetSeeds} seeds, α = {o.Alpha}, " +
            $"{o.Queries} test and {o.ValidationQueries} validation queries, R = {ground.References.Count} reference model(s); results in {jsonPath}";
        return EvaluationFolder.Report(Path.Combine(o.Out, stem + ".md"), LdsReportWriter.LdsMarkdown(result, jsonPath), result, summary);
    }

    /// <summary>A damping as written in tables and file names: 1e-6, 2.5e-3.</summary>
    internal static string Lambda(double damping) => damping.ToString("0.###e0", CultureInfo.InvariantCulture);

    /// <summary>Whether an evaluation folder was started before --subset-seeds: its models are seed 0 with the old seeds.</summary>
    internal static bool LegacySeedZero(string outDirectory)
    {
        var path = Path.Combine(outDirectory, "settings.json");
        if (!File.Exists(path))
        {
            return false;
        }
        var old = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        return old["legacySeedZero"]?.GetValue<bool>() ?? !old.ContainsKey("subsetSeeds");
    }

    /// <summary>
    /// The validation queries' generation seeds: 2³² + v, v = 0 … V − 1. Test queries use seeds 0 … Q − 1 with Q an int,
    /// so no validation query shares a test query's seed.
    /// </summary>
    internal static long[] ValidationQuerySeeds(int count) => Enumerable.Range(0, count).Select(v => (1L << 32) + v).ToArray();

    /// <summary>Checkpoints of the reference kept for TracIn/ReTrac: every Steps/5 steps.</summary>
    internal const int TracInCheckpoints = 5;

    /// <summary>Builds a method's store unless it is complete; the seconds it took, NaN when it was built before.</summary>
    internal static double BuildStore(LdsOptions o, string name, string storeDir, string referenceDir, Core.Data.ImageDataset data, StoreSource source,
        SessionSettings session, CancellationToken cancel)
    {
        var timingPath = Path.Combine(storeDir, "build-seconds.json");
        // The projector is recorded only when it is not the default, so that stores built before it was a setting still match.
        var setting = new StoreBuildSetting(o.Timesteps, o.NoiseDraws, o.Dim, o.Projector == ProjectorKind.Dense ? null : o.Projector.ToString().ToLowerInvariant());
        var method = AttributionMethods.Find(name);
        bool ownModels = method.Capabilities.OwnModels;
        if (ownModels || MethodManifest.TryLoad(storeDir) is not null)
        {
            var saved = LdsFiles.TryRead<StoreBuildRecord>(timingPath);
            if (!ownModels && saved?.Setting is { } built && built != setting)
            {
                throw new SettingException("Point", o.Point, $"{storeDir} was built with {LdsFiles.Compact(built)}; " +
                    $"this run asks timesteps {o.Timesteps}, noise draws {o.NoiseDraws}, dim {o.Dim}, projector {o.Projector}: " +
                    "give this setting point its own name (its stores, scores and lds-NAME.json go beside the others)");
            }
            return saved?.BuildSeconds ?? double.NaN;
        }
        var watch = System.Diagnostics.Stopwatch.StartNew();
        AttributionMethods.RequireConditionSupport(method, referenceDir);
        method.Build(new MethodBuildRequest
        {
            ModelDirectory = referenceDir,
            Data = data,
            Source = source,
            OutDirectory = storeDir,
            Session = session,
            Settings = MethodSettingsFor(o, referenceDir),
            Progress = new SyncProgress<MethodProgress>(p => o.Observer.Progress($"{name}: {p.Stage}", p.Done, p.Total, "")),
        }, cancel);
        double seconds = watch.Elapsed.TotalSeconds;
        JsonFile.Save(timingPath, new StoreBuildRecord(seconds, setting));
        return seconds;
    }

    internal static double? TrySecondsPerModel(string path) => LdsFiles.TryRead<MeasureRecord>(path)?.SecondsPerModel;

    /// <summary>
    /// Journey-TRAK evaluated as its paper does (Georgiev et al. 2023, Sec. 4): at each step t the measured output of a
    /// subset model is the denoising loss of the reference trajectory's state, ‖ε* − ε_θ(x̂_t, t)‖²/D with ε* the noise
    /// that takes the final image to x̂_t, and the prediction is the sum of that step's scores over the subset. The row
    /// is the mean over steps of the per-step LDS of each query (bootstrap over queries; one permutation of the models
    /// for every query and step).
    /// </summary>
    internal static (LdsRow Row, List<JourneyStepRow> Steps) StepwiseLds(LdsOptions o, string method, float[] stepScores, long[] timesteps, string referenceDir,
        SessionSettings session, List<AttributionQuery> queries, IReadOnlyList<SubsetModel> plan, int[][] subsets, int rows, Costs costs, CancellationToken cancel)
    {
        int q = queries.Count, m = subsets.Length;
        int s = timesteps.Length, pairs = q * s;
        var schedule = ModelDirectory.Open(referenceDir).CreateSchedule();
        var inputs = new List<(float[] Noisy, float[] Target, long T, long? Y)>(pairs);
        foreach (var query in queries)
        {
            var trajectory = query.Trajectory ?? throw new InvalidOperationException("generated queries record their trajectories");
            foreach (var t in timesteps)
            {
                var (noisy, target) = JourneyTrakMethod.StepInput(trajectory, t, schedule);
                inputs.Add((noisy, target, t, query.Condition));
            }
        }
        var conditions = inputs.All(x => x.Y is not null) && inputs.Count > 0 ? inputs.Select(x => x.Y!.Value).ToArray() : null;
        // Each step's loss under every subset model, per training seed, averaged over the seeds.
        var measured = NoiseCeiling.MeanOverSeeds(plan.GroupBy(p => p.SeedIndex).Select(seed => EvaluationFolder.MeasureModels(o.Observer,
            Path.Combine(o.Out, "measured", $"{method}-seed-{seed.Key}.npy"), m, pairs, $"measure trajectory step losses (seed {seed.Key})", j =>
        {
            var model = ModelDirectory.Open(seed.Single(p => p.Subset == j).Directory);
            using var denoiser = model.OpenDenoiser(session);
            return DiffusionLoss.MeasureStates(denoiser, inputs.Select(x => x.Noisy).ToArray(), inputs.Select(x => x.Target).ToArray(), inputs.Select(x => x.T).ToArray(),
                conditions: conditions).Select(v => (float)v).ToArray();
        }, cancel).Select(v => (double)v).ToArray()).ToList());

        // (query, step) pairs as the LDS's "queries": row q·S + j.
        var predicted = Lds.Predict(stepScores, pairs, rows, subsets);
        var perPair = Lds.PerQuery(predicted, measured, pairs, m);
        var test = Lds.PermutationTest(predicted, measured, pairs, m, Permutations, o.Seed);
        var perQuery = Enumerable.Range(0, q).Select(i => perPair.Skip(i * s).Take(s).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average()).ToArray();
        var steps = Enumerable.Range(0, s).Select(j =>
        {
            var interval = Lds.Bootstrap(Enumerable.Range(0, q).Select(i => perPair[i * s + j]).ToArray(), 2000, o.Seed);
            return new JourneyStepRow(timesteps[j], interval.Mean, interval.Low, interval.High);
        }).ToList();
        var row = new LdsRow(method, $"trajectory step losses (mean of {s} steps)", Lds.Bootstrap(perQuery, 2000, o.Seed), test, costs, perQuery);
        return (row, steps);
    }

    internal static MethodSettings MethodSettingsFor(LdsOptions o, string referenceDir) => new()
    {
        Timesteps = o.Timesteps,
        NoiseDraws = o.NoiseDraws,
        Dim = o.Dim,
        Projector = o.Projector,
        Damping = o.Damping,
        Seed = o.Seed,
        JourneySteps = o.JourneySteps,
        Checkpoints = CheckpointsOf(referenceDir),
    };

    /// <summary>Saved training checkpoints exported beside a model (checkpoints/step-*), for TracIn.</summary>
    internal static List<string> CheckpointsOf(string modelDirectory)
    {
        var dir = Path.Combine(modelDirectory, "checkpoints");
        return Directory.Exists(dir) ? Directory.GetDirectories(dir, "step-*").Order(StringComparer.Ordinal).ToList() : [];
    }

    /// <summary>
    /// Permutations in each method's permutation test: the measured outputs of the M subsets are permuted among the
    /// subsets (one permutation for every query at once, <see cref="Lds.PermutationTest"/>), so p ≥ 1/1001.
    /// </summary>
    internal const int Permutations = 1000;
}

/// <summary>What every method of one LDS run is scored against: its models, queries and measured outputs.</summary>
/// <param name="References">The R reference models' folders; the first is attributed and generated the queries.</param>
/// <param name="Subsets">The M subsets (rows of N).</param>
/// <param name="Plan">The M × S subset models.</param>
/// <param name="Queries">The Q test queries.</param>
/// <param name="Validation">The V validation queries.</param>
/// <param name="MeasuredLoss">Test queries' mean loss over the S seeds, subset-major (M × Q).</param>
/// <param name="ValidationLoss">The same for the validation queries (M × V).</param>
/// <param name="Ceiling">The noise ceiling (S ≥ 2), else null.</param>
/// <param name="ImageSize">The reference models' image side.</param>
internal sealed record LdsGround(IReadOnlyList<string> References, int[][] Subsets, IReadOnlyList<SubsetModel> Plan, List<AttributionQuery> Queries,
    List<AttributionQuery> Validation, double[] MeasuredLoss, double[] ValidationLoss, CeilingResult? Ceiling, int ImageSize);

/// <summary>One reference model's store of a method and the folder its scores are kept in.</summary>
internal sealed record ReferenceStore(string Model, string Store, string Scores);
