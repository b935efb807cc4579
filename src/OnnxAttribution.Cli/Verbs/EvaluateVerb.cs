using System.Globalization;
using System.Text;
using CommandLine;
using OnnxAttribution.Core;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Evaluation;
using OnnxAttribution.Core.Imaging;
using OnnxAttribution.Core.Numerics;
using OnnxAttribution.Core.Runtime;
using OnnxAttribution.Core.Sampling;
using OnnxAttribution.Training;
using OnnxAttribution.Training.Evaluation;

namespace OnnxAttribution.Cli.Verbs;

[Verb("evaluate", HelpText = "Counterfactual validation. 'evaluate lds': train M models on random α-subsets and report each method's Linear Datamodeling Score with a bootstrap 95% interval. 'evaluate counterfactual': remove each query's top-k attributed images, retrain, regenerate from the same noise, and compare with removing k random images. Both resume after a kill: every trained model and every score file is saved once.")]
internal sealed class EvaluateVerb
{
    [Value(0, MetaName = "kind", Required = true, HelpText = "lds or counterfactual.")]
    public string Kind { get; set; } = "";

    [Option("out", Required = true, HelpText = "Evaluation folder (models, stores, scores, results); rerun the same command to continue.")]
    public string Out { get; set; } = "";

    [Option("data", Default = "embedded", HelpText = "lds: training images (the reference model and every subset model train on them).")]
    public string Data { get; set; } = "embedded";

    [Option("subset", Default = "0:1000", HelpText = "lds: which rows of --data are the training set N.")]
    public string Subset { get; set; } = "0:1000";

    [Option("model", HelpText = "lds: attribute this existing model instead of training the reference here. The subset models use the recipe flags, so this is only meaningful for a model trained with the same recipe on the same rows.")]
    public string? Model { get; set; }

    [Option("subset-models", Default = 32, HelpText = "lds: M, the number of retrained subset models.")]
    public int SubsetModels { get; set; }

    [Option("alpha", Default = 0.5, HelpText = "lds: subset size as a fraction of N.")]
    public double Alpha { get; set; }

    [Option("queries", Default = 50, HelpText = "Number of generated queries (seeds 0 … Q−1 of the reference model).")]
    public int Queries { get; set; }

    [Option("methods", Separator = ',', Default = new[] { "trak", "d-trak", "pixel", "random" }, HelpText = "lds: methods to score, comma-separated (see 'featurize --method').")]
    public IEnumerable<string> Methods { get; set; } = [];

    [Option("ensemble", HelpText = "lds: a trained ensemble folder (train-ensemble on the same rows) to score as method 'ensemble'.")]
    public string? Ensemble { get; set; }

    [Option("store", HelpText = "counterfactual: the method store whose top-k are removed (its model must record its training recipe in model.json).")]
    public string? Store { get; set; }

    [Option("remove-top", Default = 50, HelpText = "counterfactual: k, how many top-attributed training images to remove per query.")]
    public int RemoveTop { get; set; }

    [Option("random-models", Default = 3, HelpText = "counterfactual: models retrained without k random images (shared by all queries).")]
    public int RandomModels { get; set; }

    [Option("seed", Default = 0L, HelpText = "Seed of the subsets, the random removals and the reference model's training.")]
    public long Seed { get; set; }

    [Option("steps", Default = 1500, HelpText = "Recipe: optimizer steps per model.")]
    public int Steps { get; set; }

    [Option("batch-size", Default = 32, HelpText = "Recipe: batch size.")]
    public int BatchSize { get; set; }

    [Option("lr", Default = 2e-3, HelpText = "Recipe: Adam learning rate.")]
    public double LearningRate { get; set; }

    [Option("ema", Default = 0.995, HelpText = "Recipe: EMA decay of the exported weights.")]
    public double Ema { get; set; }

    [Option("base-channels", Default = 16, HelpText = "Recipe: U-Net width.")]
    public int BaseChannels { get; set; }

    [Option("train-threads", Default = 0, HelpText = "TorchSharp threads per training; 0 for its default.")]
    public int TrainThreads { get; set; }

    [Option("measure-timesteps", Default = 100, HelpText = "Measured output: the query's diffusion loss averaged over this many evenly spaced timesteps …")]
    public int MeasureTimesteps { get; set; }

    [Option("measure-draws", Default = 3, HelpText = "… times this many fixed noise draws.")]
    public int MeasureDraws { get; set; }

    [Option("timesteps", Default = 10, HelpText = "Methods: K timesteps of the gradient methods' features.")]
    public int Timesteps { get; set; }

    [Option("dim", Default = 4096, HelpText = "Methods: projection dimension k.")]
    public int Dim { get; set; }

    [Option("damping", Default = 1e-3, HelpText = "Methods: relative damping λ.")]
    public double Damping { get; set; }

    [Option("sampling-steps", Default = 50, HelpText = "DDIM steps of the generated queries.")]
    public int SamplingSteps { get; set; }

    [Option("threads", Default = 0, HelpText = "ONNX Runtime intra-op threads; 0 for its default.")]
    public int Threads { get; set; }

    [Option("json", HelpText = "Print the results as JSON.")]
    public bool Json { get; set; }
}

internal static class EvaluateCommand
{
    public static int Run(EvaluateVerb o, CancellationToken cancel) => o.Kind.ToLowerInvariant() switch
    {
        "lds" => RunLds(o, cancel),
        "counterfactual" => RunCounterfactual(o, cancel),
        _ => throw new UserInputException($"evaluate '{o.Kind}': expected 'lds' or 'counterfactual'"),
    };

    private static TrainingRecipe Recipe(EvaluateVerb o) => new()
    {
        Steps = o.Steps,
        BatchSize = o.BatchSize,
        LearningRate = o.LearningRate,
        EmaDecay = o.Ema,
        BaseChannels = o.BaseChannels,
        Threads = o.TrainThreads,
    };

    /// <summary>Every setting a result depends on; a rerun with other settings into the same folder is refused.</summary>
    private static void CheckSettings(string outDirectory, object settings)
    {
        Directory.CreateDirectory(outDirectory);
        var path = Path.Combine(outDirectory, "settings.json");
        var json = System.Text.Json.JsonSerializer.Serialize(settings, Core.Models.ModelMetadata.JsonOptions);
        if (File.Exists(path))
        {
            var old = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            var now = System.Text.Json.Nodes.JsonNode.Parse(json)!.AsObject();
            foreach (var (key, value) in now)
            {
                if (!System.Text.Json.Nodes.JsonNode.DeepEquals(old[key], value))
                {
                    throw new UserInputException($"{path}: field '{key}' was {old[key]?.ToJsonString() ?? "absent"} when this evaluation started; now {value?.ToJsonString()}. Use another --out or the same settings.");
                }
            }
            return;
        }
        RecipeTrainer.SaveJson(path, settings);
    }

    /// <summary>Trains models one after another with one progress line over all their steps (with the time left).</summary>
    private sealed class TrainingProgress(string label, int models, int stepsPerModel)
    {
        private readonly ConsoleProgress _bar = new(label);

        public int Model { get; set; }

        public IProgress<TrainProgress> For(int model)
        {
            Model = model;
            return new SyncProgress<TrainProgress>(p =>
                _bar.Report(((long)model * stepsPerModel) + p.Step, (long)models * stepsPerModel, $"model {model + 1}/{models}, loss {p.Loss:F4}, {p.MillisecondsPerStep:F0} ms/step"));
        }
    }

    private static (float[] Images, List<AttributionQuery> Queries) GenerateQueries(ModelDirectory model, int count, int steps, SessionSettings session, CancellationToken cancel)
    {
        using var denoiser = model.OpenDenoiser(session);
        var seeds = Enumerable.Range(0, count).Select(q => (long)q).ToArray();
        var result = new DiffusionSampler(denoiser, model.CreateSchedule()).Sample(seeds, new SamplerOptions(SamplerKind.Ddim, steps, RecordTrajectory: true), null, cancel);
        int d = model.Metadata.Channels * model.Metadata.ImageSize * model.Metadata.ImageSize;
        var queries = Enumerable.Range(0, count)
            .Select(q => new AttributionQuery($"seed {q}", result.Images.AsSpan(q * d, d).ToArray(), result.Trajectories?[q])).ToList();
        return (result.Images, queries);
    }

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
        });
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
        RecipeTrainer.SaveJson(Path.Combine(o.Out, "subsets.json"), subsets.Select((s, j) => new { model = j, seed = SubsetSeed(o.Seed, j), rows = s }).ToList());
        var progress = new TrainingProgress("subset models", subsets.Length, recipe.Steps);
        for (int j = 0; j < subsets.Length; j++)
        {
            cancel.ThrowIfCancellationRequested();
            var name = $"model-{j:D3}";
            RecipeTrainer.TrainAndExport(recipe, data, subsets[j], SubsetSeed(o.Seed, j), $"lds subset {j}", Path.Combine(o.Out, "subsets", name + "-run"),
                Path.Combine(o.Out, "subsets", name), withVjp: false, progress.For(j), cancel);
        }
        timings["trainSubsetModelSeconds"] = Enumerable.Range(0, subsets.Length)
            .Select(j => TrainingRunInfo.Load(Path.Combine(o.Out, "subsets", $"model-{j:D3}-run")).TrainSeconds).Average();

        // 3. Queries and the measured output of every subset model.
        var (queryImages, queries) = GenerateQueries(reference, o.Queries, o.SamplingSteps, session, cancel);
        int c = reference.Metadata.Channels, size = reference.Metadata.ImageSize, d = c * size * size;
        ImageGrid.Write(Path.Combine(o.Out, "queries.png"), queryImages, o.Queries, c, size, size, new GridLayout(Math.Min(10, o.Queries), 4), queries.Select(q => (string?)q.Label).ToList());
        var measurePlan = new FeaturizationPlan(FeaturizationPlan.Evenly(reference.Metadata.Schedule.Timesteps, o.MeasureTimesteps), o.MeasureDraws, 1_000_003, MeasurementKind.Loss);
        var measuredPath = Path.Combine(o.Out, "measured-loss.npy");
        var measured = MatrixFile.TryLoad(measuredPath)?.Values;
        if (measured is null)
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var bar = new ConsoleProgress("measure query losses");
            measured = new float[subsets.Length * o.Queries];
            for (int j = 0; j < subsets.Length; j++)
            {
                cancel.ThrowIfCancellationRequested();
                var model = ModelDirectory.Open(Path.Combine(o.Out, "subsets", $"model-{j:D3}"));
                using var denoiser = model.OpenDenoiser(session);
                var losses = DiffusionLoss.Measure(denoiser, model.CreateSchedule(), measurePlan, queryImages, o.Queries);
                for (int q = 0; q < o.Queries; q++)
                {
                    measured[j * o.Queries + q] = (float)losses[q];
                }
                bar.Report(j + 1, subsets.Length, "models");
            }
            MatrixFile.Save(measuredPath, measured, subsets.Length, o.Queries);
            RecipeTrainer.SaveJson(Path.ChangeExtension(measuredPath, ".json"), new { seconds = watch.Elapsed.TotalSeconds });
        }
        if (File.Exists(Path.ChangeExtension(measuredPath, ".json")))
        {
            timings["measureSeconds"] = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.ChangeExtension(measuredPath, ".json")))!["seconds"]!.GetValue<double>();
        }
        var measuredLoss = measured.Select(v => (double)v).ToArray();

        // 4. Every method's scores on the reference model, and its LDS.
        var source = new StoreSource(referenceDir, o.Data, o.Subset, size);
        var rows = new List<LdsRow>();
        foreach (var name in methods)
        {
            cancel.ThrowIfCancellationRequested();
            var scoresPath = Path.Combine(o.Out, "scores", name + ".npy");
            Directory.CreateDirectory(Path.GetDirectoryName(scoresPath)!);
            var cached = MatrixFile.TryLoad(scoresPath);
            double buildSeconds = double.NaN, scoreSeconds = double.NaN;
            float[] scores;
            var timingPath = Path.ChangeExtension(scoresPath, ".json");
            if (cached is { } hit)
            {
                scores = hit.Values;
                if (File.Exists(timingPath))
                {
                    var saved = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(timingPath))!;
                    buildSeconds = saved["buildSeconds"]?.GetValue<double>() ?? double.NaN;
                    scoreSeconds = saved["scoreSeconds"]?.GetValue<double>() ?? double.NaN;
                }
            }
            else
            {
                string store;
                if (name == "ensemble")
                {
                    store = o.Ensemble ?? throw new UserInputException("method 'ensemble' needs --ensemble <folder> (train it with train-ensemble on the same --data/--subset)");
                }
                else
                {
                    store = Path.Combine(o.Out, "stores", name);
                    if (MethodManifest.TryLoad(store) is null)
                    {
                        var watch = System.Diagnostics.Stopwatch.StartNew();
                        var bars = new Dictionary<string, ConsoleProgress>(StringComparer.Ordinal);
                        AttributionMethods.Find(name).Build(new MethodBuildRequest
                        {
                            ModelDirectory = referenceDir,
                            Data = data,
                            Source = source,
                            OutDirectory = store,
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
                }
                var scoreWatch = System.Diagnostics.Stopwatch.StartNew();
                using (var scorer = AttributionMethods.Open(store, name == "ensemble" ? null : referenceDir, session))
                {
                    if (scorer.Rows != data.Count)
                    {
                        throw new UserInputException($"{store}: scores {scorer.Rows} rows; the training set has {data.Count}");
                    }
                    scores = scorer.Scores(queries, cancel);
                }
                scoreSeconds = scoreWatch.Elapsed.TotalSeconds;
                MatrixFile.Save(scoresPath, scores, o.Queries, data.Count);
                RecipeTrainer.SaveJson(timingPath, new { buildSeconds, scoreSeconds });
            }
            var predicted = Lds.Predict(scores, o.Queries, data.Count, subsets);
            var perQuery = Lds.PerQuery(predicted, measuredLoss, o.Queries, subsets.Length);
            var interval = Lds.Bootstrap(perQuery, 2000, o.Seed);
            var storeDir = name == "ensemble" ? o.Ensemble! : Path.Combine(o.Out, "stores", name);
            long storeBytes = Directory.Exists(storeDir) ? new DirectoryInfo(storeDir).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length) : 0;
            rows.Add(new LdsRow(name, interval.Mean, interval.Low, interval.High, interval.Count, buildSeconds, scoreSeconds, storeBytes, perQuery));
            Output.Note($"{name}: LDS {100 * interval.Mean:F1}% [{100 * interval.Low:F1}, {100 * interval.High:F1}] over {interval.Count} queries");
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
            timings,
            seconds = clock.Elapsed.TotalSeconds,
        };
        RecipeTrainer.SaveJson(Path.Combine(o.Out, "lds.json"), result);
        var table = new StringBuilder();
        table.AppendLine(CultureInfo.InvariantCulture, $"| method | LDS (%) | 95% interval | queries | build (s) | build per example (ms) | score {o.Queries} queries (s) | store (MiB) |");
        table.AppendLine("|---|---:|---|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
        {
            table.AppendLine(CultureInfo.InvariantCulture, $"| {r.Method} | {100 * r.Lds:F1} | [{100 * r.Low:F1}, {100 * r.High:F1}] | {r.Queries} | {Seconds(r.BuildSeconds)} | {Seconds(1000 * r.BuildSeconds / data.Count)} | {Seconds(r.ScoreSeconds)} | {r.StoreBytes / 1048576.0:F1} |");
        }
        File.WriteAllText(Path.Combine(o.Out, "lds.md"), table.ToString());
        if (o.Json)
        {
            Output.WriteJson(result);
        }
        else
        {
            Console.Write(table);
            Console.WriteLine($"N = {data.Count}, M = {subsets.Length}, α = {o.Alpha}, {o.Queries} queries; results in {Path.Combine(o.Out, "lds.json")}");
        }
        return CliApp.Ok;
    }

    private static string Seconds(double s) => double.IsNaN(s) ? "(cached)" : s.ToString("F1", CultureInfo.InvariantCulture);

    /// <summary>Seed of subset model j: distinct from the reference's and from every other subset's.</summary>
    private static long SubsetSeed(long seed, int j) => (seed * 1_000_003) + j + 1;

    private static MethodSettings MethodSettingsFor(EvaluateVerb o, string referenceDir) => new()
    {
        Timesteps = o.Timesteps,
        Dim = o.Dim,
        Damping = o.Damping,
        Seed = o.Seed,
        Checkpoints = CheckpointsOf(referenceDir),
    };

    /// <summary>Saved training checkpoints exported beside a model (checkpoints/step-*), for TracIn.</summary>
    private static List<string> CheckpointsOf(string modelDirectory)
    {
        var dir = Path.Combine(modelDirectory, "checkpoints");
        return Directory.Exists(dir) ? Directory.GetDirectories(dir, "step-*").Order(StringComparer.Ordinal).ToList() : [];
    }

    /// <summary>One method's LDS row.</summary>
    private sealed record LdsRow(string Method, double Lds, double Low, double High, int Queries, double BuildSeconds, double ScoreSeconds, long StoreBytes, double[] PerQuery);

    private static int RunCounterfactual(EvaluateVerb o, CancellationToken cancel)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        if (o.Store is null)
        {
            throw new UserInputException("evaluate counterfactual needs --store (a method store on the model to check)");
        }
        var source = StoreSource.TryLoad(o.Store) ?? throw new UserInputException($"{o.Store} has no {StoreSource.FileName}: it does not say which model and data it was built from");
        var reference = ModelDirectory.Open(source.ModelDirectory);
        var training = reference.Metadata.Training
            ?? throw new UserInputException($"{reference.Path}/model.json: field 'training' is missing; the counterfactual retrains with the model's own recipe");
        var data = source.LoadData();
        int baseChannels = reference.Metadata.Architecture?["baseChannels"]?.GetValue<int>()
            ?? throw new UserInputException($"{reference.Path}/model.json: field 'architecture.baseChannels' is missing");
        // The model's own recipe: the same data minus the removed rows, the same seed and steps.
        var recipe = new TrainingRecipe
        {
            Steps = training.Steps,
            BatchSize = training.BatchSize,
            LearningRate = training.LearningRate,
            EmaDecay = training.EmaDecay,
            BaseChannels = baseChannels,
            Threads = o.TrainThreads,
        };
        var method = AttributionMethods.MethodOf(o.Store).Name;
        int k = o.RemoveTop;
        if (k < 1 || k >= data.Count)
        {
            throw new UserInputException($"--remove-top {k}: must be between 1 and N − 1 = {data.Count - 1}");
        }
        CheckSettings(o.Out, new { kind = "counterfactual", store = Path.GetFullPath(o.Store), method, k, queries = o.Queries, randomModels = o.RandomModels, seed = o.Seed, recipe, samplingSteps = o.SamplingSteps });
        var session = new SessionSettings(ExecutionDevice.Cpu, o.Threads);
        var (queryImages, queries) = GenerateQueries(reference, o.Queries, o.SamplingSteps, session, cancel);
        int c = reference.Metadata.Channels, size = reference.Metadata.ImageSize, d = c * size * size;

        Core.Store.TopKResult[] top;
        using (var scorer = AttributionMethods.Open(o.Store, source.ModelDirectory, session))
        {
            top = scorer.TopK(queries, k, cancel);
        }
        var removals = new List<(string Name, int[] Removed)>();
        for (int q = 0; q < o.Queries; q++)
        {
            removals.Add(($"query-{q:D3}-top", top[q].Indices.Select(i => checked((int)i)).ToArray()));
        }
        for (int r = 0; r < o.RandomModels; r++)
        {
            var u = new double[data.Count];
            new CounterRng(o.Seed + 7_000_001, r).FillUniform(u);
            removals.Add(($"random-{r:D2}", Enumerable.Range(0, data.Count).OrderBy(i => u[i]).ThenBy(i => i).Take(k).ToArray()));
        }
        var progress = new TrainingProgress("retrain without removed rows", removals.Count, recipe.Steps);
        for (int m = 0; m < removals.Count; m++)
        {
            cancel.ThrowIfCancellationRequested();
            var removed = removals[m].Removed.ToHashSet();
            var keep = Enumerable.Range(0, data.Count).Where(i => !removed.Contains(i)).ToArray();
            RecipeTrainer.TrainAndExport(recipe, data, keep, training.Seed, $"without {removals[m].Name}", Path.Combine(o.Out, "models", removals[m].Name + "-run"),
                Path.Combine(o.Out, "models", removals[m].Name), withVjp: false, progress.For(m), cancel);
        }

        // Regenerate every query from the same noise with each retrained model; measure pixel distance and loss change.
        var plan = new FeaturizationPlan(FeaturizationPlan.Evenly(reference.Metadata.Schedule.Timesteps, 100), 3, 1_000_003, MeasurementKind.Loss);
        double[] baseLoss;
        using (var denoiser = reference.OpenDenoiser(session))
        {
            baseLoss = DiffusionLoss.Measure(denoiser, reference.CreateSchedule(), plan, queryImages, o.Queries);
        }
        (float[] Images, double[] Loss) Retrained(string name)
        {
            var model = ModelDirectory.Open(Path.Combine(o.Out, "models", name));
            var (images, _) = GenerateQueries(model, o.Queries, o.SamplingSteps, session, cancel);
            using var denoiser = model.OpenDenoiser(session);
            return (images, DiffusionLoss.Measure(denoiser, model.CreateSchedule(), plan, queryImages, o.Queries));
        }
        double Distance(float[] a, float[] b, int q)
        {
            double s = 0;
            for (int i = q * d; i < (q + 1) * d; i++)
            {
                s += (a[i] - b[i]) * (a[i] - b[i]);
            }
            return Math.Sqrt(s / d);
        }
        var randoms = removals.Where(r => r.Name.StartsWith("random-", StringComparison.Ordinal)).Select(r => Retrained(r.Name)).ToList();
        var perQuery = new List<object>();
        var tiles = new float[o.Queries * (2 + randoms.Count) * d];
        var captions = new List<string?>();
        double sumTopDist = 0, sumRandDist = 0, sumTopLoss = 0, sumRandLoss = 0;
        for (int q = 0; q < o.Queries; q++)
        {
            var after = Retrained($"query-{q:D3}-top");
            double topDist = Distance(queryImages, after.Images, q);
            double topLoss = after.Loss[q] - baseLoss[q];
            double randDist = randoms.Average(r => Distance(queryImages, r.Images, q));
            double randLoss = randoms.Average(r => r.Loss[q] - baseLoss[q]);
            sumTopDist += topDist;
            sumRandDist += randDist;
            sumTopLoss += topLoss;
            sumRandLoss += randLoss;
            perQuery.Add(new { query = q, removed = top[q].Indices, pixelRmsTop = topDist, pixelRmsRandom = randDist, lossChangeTop = topLoss, lossChangeRandom = randLoss });
            int tile = q * (2 + randoms.Count);
            queryImages.AsSpan(q * d, d).CopyTo(tiles.AsSpan(tile * d, d));
            after.Images.AsSpan(q * d, d).CopyTo(tiles.AsSpan((tile + 1) * d, d));
            captions.Add($"seed {q}");
            captions.Add($"-top{k} {topDist:F2}");
            for (int r = 0; r < randoms.Count; r++)
            {
                randoms[r].Images.AsSpan(q * d, d).CopyTo(tiles.AsSpan((tile + 2 + r) * d, d));
                captions.Add($"-rand {Distance(queryImages, randoms[r].Images, q):F2}");
            }
        }
        var png = Path.Combine(o.Out, "before-after.png");
        ImageGrid.Write(png, tiles, o.Queries * (2 + randoms.Count), c, size, size, new GridLayout(2 + randoms.Count, 5), captions);
        var result = new
        {
            store = o.Store,
            method,
            k,
            n = data.Count,
            queries = o.Queries,
            randomModels = randoms.Count,
            meanPixelRmsTop = sumTopDist / o.Queries,
            meanPixelRmsRandom = sumRandDist / o.Queries,
            meanLossChangeTop = sumTopLoss / o.Queries,
            meanLossChangeRandom = sumRandLoss / o.Queries,
            png,
            perQuery,
            seconds = clock.Elapsed.TotalSeconds,
        };
        RecipeTrainer.SaveJson(Path.Combine(o.Out, "counterfactual.json"), result);
        if (o.Json)
        {
            Output.WriteJson(result);
        }
        else
        {
            Console.WriteLine($"{method}, remove top {k} of {data.Count}, {o.Queries} queries: pixel RMS change {result.meanPixelRmsTop:F3} (random {result.meanPixelRmsRandom:F3}), query loss change {result.meanLossChangeTop:+0.0000;-0.0000} (random {result.meanLossChangeRandom:+0.0000;-0.0000}); {png}");
        }
        return CliApp.Ok;
    }
}
