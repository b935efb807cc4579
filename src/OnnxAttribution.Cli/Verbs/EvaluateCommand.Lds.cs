using System.Globalization;
using System.Text;
using System.Text.Json;
using OnnxAttribution.Core;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Evaluation;
using OnnxAttribution.Core.Store;
using OnnxAttribution.Core.Imaging;
using OnnxAttribution.Core.Runtime;
using OnnxAttribution.Core.Sampling;
using OnnxAttribution.Training;
using OnnxAttribution.Training.Evaluation;

namespace OnnxAttribution.Cli.Verbs;

internal static partial class EvaluateCommand
{
    private static int RunLds(EvaluateVerb o, CancellationToken cancel)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var timings = new Dictionary<string, double>(StringComparer.Ordinal);
        var methods = o.Methods.Select(m => m.Trim()).Where(m => m.Length > 0).ToList();
        foreach (var m in methods.Where(m => m != "ensemble"))
        {
            AttributionMethods.Find(m);
        }
        var recipe = Recipe(o);
        var data = new Core.Data.DatasetLocator().Load(o.Data, o.Subset, null);
        CheckSettings(o.Out, new
        {
            kind = "lds",
            data = o.Data,
            subset = o.Subset,
            datasetFingerprint = data.Fingerprint,
            model = o.Model,
            subsetModels = o.SubsetModels,
            alpha = o.Alpha,
            queries = o.Queries,
            seed = o.Seed,
            recipe,
            measureTimesteps = o.MeasureTimesteps,
            measureDraws = o.MeasureDraws,
            samplingSteps = o.SamplingSteps,
            journeySteps = o.JourneySteps,
        }, "subsetModels", "journeySteps");
        var session = new SessionSettings(ExecutionDevice.Cpu, o.Threads);

        // 1. The reference model: the one attributed.
        var referenceDir = o.Model ?? Path.Combine(o.Out, "reference");
        if (o.Model is null)
        {
            var bar = new TrainingProgress("reference model", 1, recipe.Steps);
            // The reference keeps three checkpoints for TracIn/ReTrac (keeping them does not change the weights).
            var referenceRecipe = recipe with { KeepCheckpointsEvery = Math.Max(1, recipe.Steps / 3) };
            RecipeTrainer.TrainAndExport(referenceRecipe, data, null, o.Seed, o.Subset, Path.Combine(o.Out, "reference-run"), referenceDir, withVjp: true, bar.For(0), cancel);
            RecipeTrainer.ExportKeptCheckpoints(referenceRecipe, Path.Combine(o.Out, "reference-run"), referenceDir);
            timings["trainReferenceSeconds"] = TrainingRunInfo.Load(Path.Combine(o.Out, "reference-run")).TrainSeconds;
        }
        var reference = ModelDirectory.Open(referenceDir);

        // 2. Subsets and their models.
        var subsets = Lds.DrawSubsets(data.Count, o.SubsetModels, o.Alpha, o.Seed);
        JsonFile.Save(Path.Combine(o.Out, "subsets.json"), subsets.Select((s, j) => new { model = j, seed = SubsetSeed(o.Seed, j), rows = s }).ToList());
        var progress = new TrainingProgress("subset models", subsets.Length, recipe.Steps);
        for (int j = 0; j < subsets.Length; j++)
        {
            cancel.ThrowIfCancellationRequested();
            var name = $"model-{j:D3}";
            RecipeTrainer.TrainAndExport(recipe, data, subsets[j], SubsetSeed(o.Seed, j), $"lds subset {j}", Path.Combine(o.Out, "subsets", name + "-run"),
                SubsetModelDirectory(o, j), withVjp: false, progress.For(j), cancel);
        }
        timings["trainSubsetModelSeconds"] = Enumerable.Range(0, subsets.Length)
            .Select(j => TrainingRunInfo.Load(Path.Combine(o.Out, "subsets", $"model-{j:D3}-run")).TrainSeconds).Average();

        // 3. Queries and the measured output of every subset model.
        var queries = GeneratedQueries.Generate(reference, QuerySeeds(o.Queries), SamplerKind.Ddim, o.SamplingSteps, session, cancel);
        var queryImages = TrakMethod.Images(queries);
        int c = reference.Metadata.Channels, size = reference.Metadata.ImageSize, d = c * size * size;
        ImageGrid.Write(Path.Combine(o.Out, "queries.png"), queryImages, o.Queries, c, size, size, new GridLayout(Math.Min(10, o.Queries), 4), queries.Select(q => (string?)q.Label).ToList());
        var measurePlan = new FeaturizationPlan(FeaturizationPlan.Evenly(reference.Metadata.Schedule.Timesteps, o.MeasureTimesteps), o.MeasureDraws, 1_000_003, MeasurementKind.Loss);
        var measured = MeasureModels(Path.Combine(o.Out, "measured-loss.npy"), subsets.Length, o.Queries, "measure query losses", j =>
        {
            var model = ModelDirectory.Open(SubsetModelDirectory(o, j));
            using var denoiser = model.OpenDenoiser(session);
            return DiffusionLoss.Measure(denoiser, model.CreateSchedule(), measurePlan, queryImages, o.Queries).Select(v => (float)v).ToArray();
        }, cancel);
        if (TrySecondsPerModel(Path.Combine(o.Out, "measured-loss.json")) is { } perModel)
        {
            timings["measureSecondsPerModel"] = perModel;
        }
        var measuredLoss = measured.Select(v => (double)v).ToArray();

        // 4. Every method's scores on the reference model, and its LDS.
        var source = new StoreSource(referenceDir, o.Data, o.Subset, size);
        var rows = new List<LdsRow>();
        List<JourneyStepRow>? journeySteps = null;
        foreach (var name in methods)
        {
            cancel.ThrowIfCancellationRequested();
            var scoresPath = Path.Combine(o.Out, "scores", name + ".npy");
            Directory.CreateDirectory(Path.GetDirectoryName(scoresPath)!);
            var storeDir = name == "ensemble"
                ? o.Ensemble ?? throw new UserInputException("method 'ensemble' needs --ensemble <folder> (train it with train-ensemble on the same --data/--subset)")
                : Path.Combine(o.Out, "stores", name);
            double buildSeconds = double.NaN, scoreSeconds = double.NaN;
            float[] scores;
            var timingPath = Path.ChangeExtension(scoresPath, ".json");
            var saved = File.Exists(timingPath) ? System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(timingPath)) : null;
            // Scores are reused only from the same store: another --ensemble folder scores again. (Files written before
            // the store was recorded count as the store under --out, where every method but the ensemble is built.)
            string? savedStore = saved?["store"]?.GetValue<string>();
            bool sameStore = savedStore is null ? name != "ensemble" : savedStore == Path.GetFullPath(storeDir);
            // A stepwise method (journey-trak) also keeps its scores per step, <name>-steps.npy, and its timesteps.
            var stepsPath = Path.Combine(o.Out, "scores", name + "-steps.npy");
            long[]? timesteps = saved?["steps"]?.Deserialize<long[]>();
            var cachedScores = sameStore ? TryReadMatrix(scoresPath) : null;
            var cachedSteps = sameStore && timesteps is not null ? TryReadMatrix(stepsPath) : null;
            float[]? stepScores = cachedSteps?.Values;
            if (cachedScores is { } hit && (timesteps is null || stepScores is not null))
            {
                scores = hit.Values;
                buildSeconds = ReadSeconds(saved?["buildSeconds"]);
                scoreSeconds = ReadSeconds(saved?["scoreSeconds"]);
            }
            else
            {
                if (name != "ensemble" && MethodManifest.TryLoad(storeDir) is null)
                {
                    var watch = System.Diagnostics.Stopwatch.StartNew();
                    var bars = new Dictionary<string, ConsoleProgress>(StringComparer.Ordinal);
                    AttributionMethods.Find(name).Build(new MethodBuildRequest
                    {
                        ModelDirectory = referenceDir,
                        Data = data,
                        Source = source,
                        OutDirectory = storeDir,
                        Session = session,
                        Settings = MethodSettingsFor(o, referenceDir),
                        Progress = new SyncProgress<MethodProgress>(p =>
                        {
                            if (!bars.TryGetValue(p.Stage, out var b))
                            {
                                bars[p.Stage] = b = new ConsoleProgress($"{name}: {p.Stage}");
                            }
                            b.Report(p.Done, p.Total);
                        }),
                    }, cancel);
                    buildSeconds = watch.Elapsed.TotalSeconds;
                }
                var scoreWatch = System.Diagnostics.Stopwatch.StartNew();
                using (var scorer = AttributionMethods.Open(storeDir, name == "ensemble" ? null : referenceDir, session))
                {
                    if (scorer.Rows != data.Count)
                    {
                        throw new UserInputException($"{storeDir}: scores {scorer.Rows} rows; the training set has {data.Count}");
                    }
                    if (scorer is IStepwiseScorer stepScorer)
                    {
                        timesteps = stepScorer.Steps.ToArray();
                        stepScores = stepScorer.StepScores(queries, cancel);
                        scores = IStepwiseScorer.MeanOverSteps(stepScores, o.Queries, timesteps.Length, data.Count);
                        NpyFormat.WriteMatrix(stepsPath, stepScores, o.Queries, (long)timesteps.Length * data.Count);
                    }
                    else
                    {
                        timesteps = null;
                        scores = scorer.Scores(queries, cancel);
                    }
                }
                scoreSeconds = scoreWatch.Elapsed.TotalSeconds;
                NpyFormat.WriteMatrix(scoresPath, scores, o.Queries, data.Count);
                JsonFile.Save(timingPath, new { store = Path.GetFullPath(storeDir), buildSeconds, scoreSeconds, steps = timesteps });
            }
            long storeBytes = Directory.Exists(storeDir) ? new DirectoryInfo(storeDir).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length) : 0;
            var predicted = Lds.Predict(scores, o.Queries, data.Count, subsets);
            var perQuery = Lds.PerQuery(predicted, measuredLoss, o.Queries, subsets.Length);
            var interval = Lds.Bootstrap(perQuery, 2000, o.Seed);
            var test = Lds.PermutationTest(predicted, measuredLoss, o.Queries, subsets.Length, Permutations, o.Seed);
            double centred = Lds.PerQuery(Lds.Predict(Lds.RemoveQueryMean(scores, o.Queries, data.Count), o.Queries, data.Count, subsets), measuredLoss, o.Queries, subsets.Length)
                .Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average();
            bool stepwise = timesteps is not null;
            // Journey-TRAK attributes the steps of the trajectory, not the final image: its own row measures that
            // (below); this one says how its mean over steps does on the final image's loss, the other rows' output.
            rows.Add(new LdsRow(stepwise ? name + " (final image)" : name, "final image", interval, test, buildSeconds, scoreSeconds, storeBytes, perQuery) { QueryMeanRemoved = centred, QueryAgreement = Lds.QueryAgreement(scores, o.Queries, data.Count) });
            Output.Note($"{rows[^1].Method}: LDS {100 * interval.Mean:F1}% [{100 * interval.Low:F1}, {100 * interval.High:F1}] over {interval.Count} queries, permutation p = {test.P:F3}");
            if (stepwise)
            {
                var (row, steps) = StepwiseLds(o, name, stepScores!, timesteps!, referenceDir, session, queries, subsets, data.Count, buildSeconds, scoreSeconds, storeBytes, cancel);
                rows.Add(row);
                journeySteps = steps;
                Output.Note($"{name}: per-step LDS {100 * row.Lds:F1}% [{100 * row.Low:F1}, {100 * row.High:F1}] (mean over {steps.Count} steps), permutation p = {row.P:F3}");
            }
        }

        var result = new
        {
            data = o.Data,
            subset = o.Subset,
            n = data.Count,
            imageSize = size,
            modelParameters = reference.Metadata.Parameters.Sum(p => p.Shape.Aggregate(1L, (a, b) => a * b)),
            reference = referenceDir,
            subsetModels = subsets.Length,
            alpha = o.Alpha,
            queries = o.Queries,
            recipe,
            measured = $"diffusion loss over {o.MeasureTimesteps} timesteps × {o.MeasureDraws} noise draws",
            methods = rows,
            permutations = Permutations,
            journeySteps,
            timings,
            seconds = clock.Elapsed.TotalSeconds,
        };
        JsonFile.Save(Path.Combine(o.Out, "lds.json"), result);
        var table = new StringBuilder();
        table.AppendLine(CultureInfo.InvariantCulture, $"| method | measured output | LDS (%) | 95% interval | p (permutation) | LDS, query-mean removed (%) | rows agree between queries | queries | build (s) | build per example (ms) | score {o.Queries} queries (s) | store (MiB) |");
        table.AppendLine("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
        {
            table.AppendLine(CultureInfo.InvariantCulture, $"| {r.Method} | {r.Output} | {100 * r.Lds:F1} | [{100 * r.Low:F1}, {100 * r.High:F1}] | {r.P:F3} | {(double.IsNaN(r.QueryMeanRemoved) ? "–" : (100 * r.QueryMeanRemoved).ToString("F1", CultureInfo.InvariantCulture))} | {(double.IsNaN(r.QueryAgreement) ? "–" : r.QueryAgreement.ToString("F2", CultureInfo.InvariantCulture))} | {r.Queries} | {Seconds(r.BuildSeconds)} | {Seconds(1000 * r.BuildSeconds / data.Count)} | {Seconds(r.ScoreSeconds)} | {r.StoreBytes / 1048576.0:F1} |");
        }
        if (journeySteps is not null)
        {
            table.AppendLine();
            table.AppendLine("| journey-trak step t | LDS (%) | 95% interval |");
            table.AppendLine("|---:|---:|---|");
            foreach (var step in journeySteps)
            {
                table.AppendLine(CultureInfo.InvariantCulture, $"| {step.Timestep} | {100 * step.Lds:F1} | [{100 * step.Low:F1}, {100 * step.High:F1}] |");
            }
        }
        return Report(o, Path.Combine(o.Out, "lds.md"), table.ToString(), result, $"N = {data.Count}, M = {subsets.Length}, α = {o.Alpha}, {o.Queries} queries; results in {Path.Combine(o.Out, "lds.json")}");
    }

    private static string SubsetModelDirectory(EvaluateVerb o, int j) => Path.Combine(o.Out, "subsets", $"model-{j:D3}");

    private static double? TrySecondsPerModel(string path) =>
        File.Exists(path) ? System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))?["secondsPerModel"]?.GetValue<double>() : null;

    /// <summary>A timing saved as a number, or as "NaN" where it was not measured (a store built by an earlier run).</summary>
    private static double ReadSeconds(System.Text.Json.Nodes.JsonNode? node) => node is null ? double.NaN
        : node.GetValueKind() == System.Text.Json.JsonValueKind.String ? double.Parse(node.GetValue<string>(), CultureInfo.InvariantCulture)
        : node.GetValue<double>();

    private static string Seconds(double s) => double.IsNaN(s) ? "(cached)" : s.ToString("F1", CultureInfo.InvariantCulture);

    /// <summary>Seed of subset model j: distinct from the reference's and from every other subset's.</summary>
    private static long SubsetSeed(long seed, int j) => (seed * 1_000_003) + j + 1;

    private static MethodSettings MethodSettingsFor(EvaluateVerb o, string referenceDir) => new()
    {
        Timesteps = o.Timesteps,
        Dim = o.Dim,
        Damping = o.Damping,
        Seed = o.Seed,
        JourneySteps = o.JourneySteps,
        Checkpoints = CheckpointsOf(referenceDir),
    };

    /// <summary>Saved training checkpoints exported beside a model (checkpoints/step-*), for TracIn.</summary>
    private static List<string> CheckpointsOf(string modelDirectory)
    {
        var dir = Path.Combine(modelDirectory, "checkpoints");
        return Directory.Exists(dir) ? Directory.GetDirectories(dir, "step-*").Order(StringComparer.Ordinal).ToList() : [];
    }

    /// <summary>Permutations of the subset models in each method's permutation test.</summary>
    private const int Permutations = 1000;

    /// <summary>One method's LDS row: the mean LDS with its bootstrap interval over queries, the permutation test, and costs.</summary>
    private sealed record LdsRow(string Method, string Output, double Lds, double Low, double High, double P, double NullLow, double NullHigh, int Queries,
        double BuildSeconds, double ScoreSeconds, long StoreBytes, double[] PerQuery)
    {
        public LdsRow(string method, string output, Interval interval, PermutationResult test, double buildSeconds, double scoreSeconds, long storeBytes, double[] perQuery)
            : this(method, output, interval.Mean, interval.Low, interval.High, test.P, test.NullLow, test.NullHigh, interval.Count, buildSeconds, scoreSeconds, storeBytes, perQuery)
        {
        }

        /// <summary>
        /// A diagnostic, not a method: the mean LDS after subtracting from each training example its mean score over
        /// the evaluation queries. High where this is much above <see cref="Lds"/>, the method's scores carry a large
        /// query-independent part (TracIn's "generally influential" examples) that hides what is specific to a query.
        /// </summary>
        public double QueryMeanRemoved { get; init; } = double.NaN;

        /// <summary>The mean Spearman correlation between two queries' score rows (<see cref="Lds.QueryAgreement"/>).</summary>
        public double QueryAgreement { get; init; } = double.NaN;
    }

    /// <summary>Journey-TRAK's LDS at one step of the trajectory.</summary>
    private sealed record JourneyStepRow(long Timestep, double Lds, double Low, double High);

    /// <summary>
    /// Journey-TRAK evaluated as its paper does (Georgiev et al. 2023, Sec. 4): at each step t the measured output of a
    /// subset model is the denoising loss of the reference trajectory's state, ‖ε* − ε_θ(x̂_t, t)‖²/D with ε* the noise
    /// that takes the final image to x̂_t, and the prediction is the sum of that step's scores over the subset. The row
    /// is the mean over steps of the per-step LDS of each query (bootstrap over queries; one permutation of the models
    /// for every query and step).
    /// </summary>
    private static (LdsRow Row, List<JourneyStepRow> Steps) StepwiseLds(EvaluateVerb o, string method, float[] stepScores, long[] timesteps, string referenceDir,
        SessionSettings session, List<AttributionQuery> queries, int[][] subsets, int rows, double buildSeconds, double scoreSeconds, long storeBytes, CancellationToken cancel)
    {
        int q = queries.Count, m = subsets.Length;
        int s = timesteps.Length, pairs = q * s;
        var schedule = ModelDirectory.Open(referenceDir).CreateSchedule();
        var inputs = new List<(float[] Noisy, float[] Target, long T)>(pairs);
        foreach (var query in queries)
        {
            var trajectory = query.Trajectory ?? throw new InvalidOperationException("generated queries record their trajectories");
            foreach (var t in timesteps)
            {
                var (noisy, target) = JourneyTrakMethod.StepInput(trajectory, t, schedule);
                inputs.Add((noisy, target, t));
            }
        }
        var measured = MeasureModels(Path.Combine(o.Out, $"measured-{method}.npy"), m, pairs, "measure trajectory step losses", j =>
        {
            var model = ModelDirectory.Open(SubsetModelDirectory(o, j));
            using var denoiser = model.OpenDenoiser(session);
            return DiffusionLoss.MeasureStates(denoiser, inputs.Select(x => x.Noisy).ToArray(), inputs.Select(x => x.Target).ToArray(), inputs.Select(x => x.T).ToArray())
                .Select(v => (float)v).ToArray();
        }, cancel).Select(v => (double)v).ToArray();

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
        var row = new LdsRow(method, $"trajectory step losses (mean of {s} steps)", Lds.Bootstrap(perQuery, 2000, o.Seed), test, buildSeconds, scoreSeconds, storeBytes, perQuery);
        return (row, steps);
    }
}
