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
        if (o.SubsetSeeds < 1 || o.ValidationQueries < 1 || o.Queries < 1)
        {
            throw new UserInputException($"--subset-seeds {o.SubsetSeeds}, --validation-queries {o.ValidationQueries}, --queries {o.Queries}: each must be at least 1");
        }
        var grid = o.DampingGrid.ToList();
        if (grid.Count == 0 || grid.Any(l => !(l > 0)))
        {
            throw new UserInputException($"--damping-grid {string.Join(',', grid)}: expected positive values");
        }
        var recipe = Recipe(o);
        var data = new Core.Data.DatasetLocator().Load(o.Data, o.Subset, null);
        // A folder started before --subset-seeds (its settings.json has no 'subsetSeeds') keeps its models as seed 0.
        bool legacySeedZero = LegacySeedZero(o.Out);
        CheckSettings(o.Out, new
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
        var session = new SessionSettings(ExecutionDevice.Cpu, o.Threads);

        // 1. The reference model: the one attributed.
        var referenceDir = o.Model ?? Path.Combine(o.Out, "reference");
        if (o.Model is null)
        {
            var bar = new TrainingProgress("reference model", 1, recipe.Steps);
            // The reference keeps five checkpoints for TracIn/ReTrac (keeping them does not change the weights).
            var referenceRecipe = recipe with { KeepCheckpointsEvery = Math.Max(1, recipe.Steps / TracInCheckpoints) };
            var referenceRun = Path.Combine(o.Out, "reference-run");
            RecipeTrainer.TrainAndExport(referenceRecipe, data, null, o.Seed, o.Subset, referenceRun, referenceDir, withVjp: true, bar.For(0), cancel);
            if (methods.Any(m => m is "tracin" or "retrac"))
            {
                try
                {
                    RecipeTrainer.ExportKeptCheckpoints(referenceRecipe, referenceRun, referenceDir);
                }
                catch (ModelFileException e)
                {
                    throw new UserInputException($"{referenceRun}: tracin/retrac use {TracInCheckpoints} checkpoints of the reference, kept every {referenceRecipe.KeepCheckpointsEvery} steps, and this run did not keep them (it was trained by an earlier version): move {referenceDir}, {referenceRun} and {Path.Combine(o.Out, "stores")} aside to train the reference again, or leave tracin and retrac out ({e.Message})", e);
                }
            }
            timings["trainReferenceSeconds"] = TrainingRunInfo.Load(referenceRun).TrainSeconds;
        }
        var reference = ModelDirectory.Open(referenceDir);

        // 2. Subsets and their models: every subset trained with S seeds.
        var subsets = Lds.DrawSubsets(data.Count, o.SubsetModels, o.Alpha, o.Seed);
        var plan = SubsetModels.Plan(o.Out, o.Seed, subsets.Length, o.SubsetSeeds, legacySeedZero);
        JsonFile.Save(Path.Combine(o.Out, "subsets.json"), subsets.Select((s, j) => new
        {
            model = j,
            seeds = plan.Where(p => p.Subset == j).Select(p => new { seed = p.SeedIndex, trainingSeed = p.TrainingSeed, directory = Path.GetFileName(p.Directory) }),
            rows = s,
        }).ToList());
        var progress = new TrainingProgress("subset models", plan.Count, recipe.Steps);
        SubsetModels.TrainMissing(plan, (i, m) => RecipeTrainer.TrainAndExport(recipe, data, subsets[m.Subset], m.TrainingSeed, $"lds subset {m.Subset} seed {m.SeedIndex}",
            m.RunDirectory, m.Directory, withVjp: false, progress.For(i), cancel), cancel);
        timings["trainSubsetModelSeconds"] = plan.Select(m => TrainingRunInfo.Load(m.RunDirectory).TrainSeconds).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average();

        // 3. Test and validation queries, and the measured output of every subset model: its loss on each query, per seed.
        var testSeeds = QuerySeeds(o.Queries);
        var validationSeeds = ValidationQuerySeeds(o.ValidationQueries);
        var allQueries = GeneratedQueries.Generate(reference, [.. testSeeds, .. validationSeeds], SamplerKind.Ddim, o.SamplingSteps, session, cancel);
        var queries = allQueries.Take(o.Queries).ToList();
        var validation = allQueries.Skip(o.Queries).ToList();
        var queryImages = TrakMethod.Images(queries);
        var allImages = TrakMethod.Images(allQueries);
        int c = reference.Metadata.Channels, size = reference.Metadata.ImageSize;
        ImageGrid.Write(Path.Combine(o.Out, "queries.png"), queryImages, o.Queries, c, size, size, new GridLayout(Math.Min(10, o.Queries), 4), queries.Select(q => (string?)q.Label).ToList());
        var measurePlan = new FeaturizationPlan(FeaturizationPlan.Evenly(reference.Metadata.Schedule.Timesteps, o.MeasureTimesteps), o.MeasureDraws, 1_000_003, MeasurementKind.Loss);
        int allCount = allQueries.Count;
        var perSeed = Enumerable.Range(0, o.SubsetSeeds).Select(s => MeasureModels(Path.Combine(o.Out, "measured", $"loss-seed-{s}.npy"), subsets.Length, allCount, $"measure query losses (seed {s})", j =>
        {
            var model = ModelDirectory.Open(plan[(s * subsets.Length) + j].Directory);
            using var denoiser = model.OpenDenoiser(session);
            return DiffusionLoss.Measure(denoiser, model.CreateSchedule(), measurePlan, allImages, allCount).Select(v => (float)v).ToArray();
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
            Output.Note($"noise ceiling √ρ_S: {100 * ceiling.Mean.Mean:F1}% [{100 * ceiling.Mean.Low:F1}, {100 * ceiling.Mean.High:F1}] (ρ_S {ceiling.MeanReliability.Mean:F3}, {ceiling.Splits} seed splits of {ceiling.HalfSize} against {ceiling.HalfSize})");
        }

        // 4. Every method's scores on the reference model: damping chosen on the validation queries, then the test queries once.
        var source = new StoreSource(referenceDir, o.Data, o.Subset, size);
        var rows = new List<LdsRow>();
        List<JourneyStepRow>? journeySteps = null;
        var grams = new GramCache();
        foreach (var name in methods)
        {
            cancel.ThrowIfCancellationRequested();
            var storeDir = name == "ensemble"
                ? o.Ensemble ?? throw new UserInputException("method 'ensemble' needs --ensemble <folder> (train it with train-ensemble on the same --data/--subset)")
                : Path.Combine(o.Out, "stores", name);
            double buildSeconds = BuildStore(o, name, storeDir, referenceDir, data, source, session, cancel);
            var damped = name == "ensemble" ? null : AttributionMethods.Find(name) as IDampedMethod;
            double ValidationLds(double? damping)
            {
                var scores = ScoreCached(o, name, storeDir, referenceDir, session, validation, data.Count, damping, damped, grams, Path.Combine(o.Out, "scores", "validation"), cancel).Scores;
                var perQuery = Lds.PerQuery(Lds.Predict(scores, o.ValidationQueries, data.Count, subsets), validationLoss, o.ValidationQueries, subsets.Length);
                return perQuery.Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average();
            }
            Scored Test(double? damping) => ScoreCached(o, name, storeDir, referenceDir, session, queries, data.Count, damping, damped, grams, Path.Combine(o.Out, "scores"), cancel);
            Scored scored;
            double validationLds;
            double? chosen = null;
            IReadOnlyList<DampingPoint>? sweep = null;
            if (damped is not null)
            {
                var tuned = DampingTuning.Tune(grid, l => ValidationLds(l), l => Test(l));
                (scored, chosen, sweep) = (tuned.Test, tuned.Chosen, tuned.Sweep);
                validationLds = sweep.Single(p => p.Damping == tuned.Chosen).ValidationLds;
                // The store is left at the chosen λ (the sweep may have left it at another), for what uses it next.
                if (MethodManifest.Require(storeDir, name).Settings["damping"]?.GetValue<double>() != tuned.Chosen)
                {
                    damped.Redamp(storeDir, tuned.Chosen, grams);
                }
                Output.Note($"{name}: λ = {Lambda(chosen.Value)} chosen on {o.ValidationQueries} validation queries (validation LDS {string.Join(", ", sweep.Select(p => $"{Lambda(p.Damping)}: {100 * p.ValidationLds:F1}%"))})");
            }
            else
            {
                validationLds = ValidationLds(null);
                scored = Test(null);
            }
            grams.Clear();
            var scores = scored.Scores;
            long storeBytes = Directory.Exists(storeDir) ? new DirectoryInfo(storeDir).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length) : 0;
            var predicted = Lds.Predict(scores, o.Queries, data.Count, subsets);
            var perQuery = Lds.PerQuery(predicted, measuredLoss, o.Queries, subsets.Length);
            var interval = Lds.Bootstrap(perQuery, 2000, o.Seed);
            var test = Lds.PermutationTest(predicted, measuredLoss, o.Queries, subsets.Length, Permutations, o.Seed);
            double centred = Lds.PerQuery(Lds.Predict(Lds.RemoveQueryMean(scores, o.Queries, data.Count), o.Queries, data.Count, subsets), measuredLoss, o.Queries, subsets.Length)
                .Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average();
            bool stepwise = scored.Timesteps is not null;
            var costs = new Costs(buildSeconds, buildSeconds / data.Count, scored.Seconds, 1000 * scored.Seconds / o.Queries, storeBytes);
            // Journey-TRAK attributes the steps of the trajectory, not the final image: its own row measures that
            // (below); this one says how its mean over steps does on the final image's loss, the other rows' output.
            rows.Add(new LdsRow(stepwise ? name + " (final image)" : name, "final image", interval, test, costs, perQuery)
            {
                QueryMeanRemoved = centred,
                QueryAgreement = Lds.QueryAgreement(scores, o.Queries, data.Count),
                ValidationLds = validationLds,
                Damping = chosen,
                DampingSweep = sweep,
                Ceiling = ceiling?.Mean.Mean,
                FractionOfCeiling = ceiling is { Mean.Mean: > 0 } ? interval.Mean / ceiling.Mean.Mean : null,
                Command = o.CommandLine,
            });
            Output.Note($"{rows[^1].Method}: LDS {100 * interval.Mean:F1}% [{100 * interval.Low:F1}, {100 * interval.High:F1}] over {interval.Count} queries, permutation p = {test.P:F3}" +
                (ceiling is null ? "" : $", {100 * rows[^1].FractionOfCeiling:F0}% of the ceiling"));
            if (stepwise)
            {
                var (row, steps) = StepwiseLds(o, name, scored.StepScores!, scored.Timesteps!, referenceDir, session, queries, plan, subsets, data.Count, costs, cancel);
                rows.Add(row with { ValidationLds = validationLds, Damping = chosen, DampingSweep = sweep, Command = o.CommandLine });
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
            subsetSeeds = o.SubsetSeeds,
            alpha = o.Alpha,
            queries = o.Queries,
            querySeeds = $"0 … {o.Queries - 1}",
            validationQueries = o.ValidationQueries,
            validationQuerySeeds = $"2^32 + 0 … 2^32 + {o.ValidationQueries - 1}",
            dampingGrid = grid,
            recipe,
            measured = $"diffusion loss over {o.MeasureTimesteps} timesteps × {o.MeasureDraws} noise draws, mean over {o.SubsetSeeds} training seeds per subset",
            ceiling = ceiling is null ? null : new
            {
                mean = ceiling.Mean.Mean,
                low = ceiling.Mean.Low,
                high = ceiling.Mean.High,
                reliability = ceiling.MeanReliability.Mean,
                reliabilityLow = ceiling.MeanReliability.Low,
                reliabilityHigh = ceiling.MeanReliability.High,
                splits = ceiling.Splits,
                halfSize = ceiling.HalfSize,
                perQuery = ceiling.Ceiling,
            },
            methods = rows,
            permutations = Permutations,
            journeySteps,
            timings,
            command = o.CommandLine,
            seconds = clock.Elapsed.TotalSeconds,
        };
        var jsonPath = Path.Combine(o.Out, "lds.json");
        JsonFile.Save(jsonPath, result);
        var summary = $"N = {data.Count}, M = {subsets.Length} × S = {o.SubsetSeeds} seeds, α = {o.Alpha}, {o.Queries} test and {o.ValidationQueries} validation queries; results in {jsonPath}";
        return Report(o, Path.Combine(o.Out, "lds.md"), LdsMarkdown(System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(jsonPath))!, jsonPath), result, summary);
    }

    /// <summary>'evaluate lds-report': lds.md again from the lds.json in --out (e.g. docs/results), printed.</summary>
    private static int RunLdsReport(EvaluateVerb o)
    {
        var jsonPath = Path.Combine(o.Out, "lds.json");
        if (!File.Exists(jsonPath))
        {
            throw new UserInputException($"--out {o.Out}: no lds.json there (written by 'evaluate lds')");
        }
        var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(jsonPath))!;
        return Report(o, Path.Combine(o.Out, "lds.md"), LdsMarkdown(node, jsonPath), node, $"from {jsonPath}");
    }

    /// <summary>The Markdown tables of lds.md, generated from lds.json only.</summary>
    private static string LdsMarkdown(System.Text.Json.Nodes.JsonNode r, string source)
    {
        static string Pct(System.Text.Json.Nodes.JsonNode? v) => v is null || v.GetValueKind() != JsonValueKind.Number ? "–" : (100 * v.GetValue<double>()).ToString("F1", CultureInfo.InvariantCulture);
        // A number, or "(cached)" for a cost not measured (work done by an earlier run), "–" for a statistic that is undefined.
        static string Num(System.Text.Json.Nodes.JsonNode? v, string format, string missing = "(cached)") =>
            v is null || v.GetValueKind() != JsonValueKind.Number ? missing : v.GetValue<double>().ToString(format, CultureInfo.InvariantCulture);
        var table = new StringBuilder();
        table.AppendLine(CultureInfo.InvariantCulture, $"Generated from {Path.GetFileName(source)} by `{r["command"]?.GetValue<string>() ?? "evaluate lds"}`.");
        table.AppendLine();
        table.AppendLine(CultureInfo.InvariantCulture, $"N = {r["n"]}, M = {r["subsetModels"]} subsets × S = {r["subsetSeeds"]} training seeds, α = {r["alpha"]}; {r["queries"]} test queries (seeds {r["querySeeds"]?.GetValue<string>()}), {r["validationQueries"]} validation queries (seeds {r["validationQuerySeeds"]?.GetValue<string>()}); measured output: {r["measured"]?.GetValue<string>()}.");
        table.AppendLine();
        var ceiling = r["ceiling"];
        table.AppendLine(ceiling is null
            ? "Noise ceiling: needs --subset-seeds ≥ 2."
            : string.Create(CultureInfo.InvariantCulture, $"Noise ceiling √ρ_S: **{Pct(ceiling["mean"])}%** [{Pct(ceiling["low"])}, {Pct(ceiling["high"])}] (Spearman–Brown ρ_S {ceiling["reliability"]!.GetValue<double>():F3} [{ceiling["reliabilityLow"]!.GetValue<double>():F3}, {ceiling["reliabilityHigh"]!.GetValue<double>():F3}], {ceiling["splits"]} seed splits of {ceiling["halfSize"]} against {ceiling["halfSize"]})."));
        table.AppendLine();
        table.AppendLine("| method | measured output | λ (chosen on validation) | validation LDS (%) | test LDS (%) | 95% interval | fraction of ceiling | p (permutation) | LDS, query-mean removed (%) | rows agree between queries | queries | build (s) | build per example (ms) | query (ms) | store (MiB) |");
        table.AppendLine("|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var m in r["methods"]!.AsArray())
        {
            var d = m!["damping"];
            var fraction = m["fractionOfCeiling"];
            table.AppendLine(CultureInfo.InvariantCulture,
                $"| {m["method"]} | {m["output"]} | {(d is null ? "–" : Lambda(d.GetValue<double>()))} | {Pct(m["validationLds"])} | {Pct(m["lds"])} | [{Pct(m["low"])}, {Pct(m["high"])}] | {(fraction is null || fraction.GetValueKind() != JsonValueKind.Number ? "–" : fraction.GetValue<double>().ToString("F2", CultureInfo.InvariantCulture))} | {Num(m["p"], "F3", "–")} | {Pct(m["queryMeanRemoved"])} | {Num(m["queryAgreement"], "F2", "–")} | {m["queries"]} | {Num(m["costs"]!["buildSeconds"], "F1")} | {Num(m["costs"]!["buildSecondsPerExample"] is { } b && b.GetValueKind() == JsonValueKind.Number ? 1000 * b.GetValue<double>() : null, "F1")} | {Num(m["costs"]!["queryMilliseconds"], "F0")} | {m["costs"]!["storeBytes"]!.GetValue<long>() / 1048576.0:F1} |");
        }
        var swept = r["methods"]!.AsArray().Where(m => m!["dampingSweep"] is System.Text.Json.Nodes.JsonArray).ToList();
        if (swept.Count > 0)
        {
            table.AppendLine();
            var lambdas = swept[0]!["dampingSweep"]!.AsArray().Select(p => p!["damping"]!.GetValue<double>()).ToList();
            table.AppendLine("| validation LDS (%) at λ | " + string.Join(" | ", lambdas.Select(Lambda)) + " |");
            table.AppendLine("|---|" + string.Concat(lambdas.Select(_ => "---:|")));
            foreach (var m in swept.Where(m => !m!["method"]!.GetValue<string>().EndsWith("(final image)", StringComparison.Ordinal)))
            {
                table.AppendLine(CultureInfo.InvariantCulture, $"| {m!["method"]} | {string.Join(" | ", m["dampingSweep"]!.AsArray().Select(p => Pct(p!["validationLds"])))} |");
            }
        }
        if (r["journeySteps"] is System.Text.Json.Nodes.JsonArray steps)
        {
            table.AppendLine();
            table.AppendLine("| journey-trak step t | LDS (%) | 95% interval |");
            table.AppendLine("|---:|---:|---|");
            foreach (var step in steps)
            {
                table.AppendLine(CultureInfo.InvariantCulture, $"| {step!["timestep"]} | {Pct(step["lds"])} | [{Pct(step["low"])}, {Pct(step["high"])}] |");
            }
        }
        return table.ToString();
    }

    /// <summary>A damping as written in tables and file names: 1e-6, 2.5e-3.</summary>
    private static string Lambda(double damping) => damping.ToString("0.###e0", CultureInfo.InvariantCulture);

    /// <summary>Whether an evaluation folder was started before --subset-seeds: its models are seed 0 with the old seeds.</summary>
    private static bool LegacySeedZero(string outDirectory)
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
    private static long[] ValidationQuerySeeds(int count) => Enumerable.Range(0, count).Select(v => (1L << 32) + v).ToArray();

    /// <summary>Checkpoints of the reference kept for TracIn/ReTrac: every Steps/5 steps.</summary>
    private const int TracInCheckpoints = 5;

    /// <summary>Builds a method's store unless it is complete; the seconds it took, NaN when it was built before.</summary>
    private static double BuildStore(EvaluateVerb o, string name, string storeDir, string referenceDir, Core.Data.ImageDataset data, StoreSource source, SessionSettings session, CancellationToken cancel)
    {
        var timingPath = Path.Combine(storeDir, "build-seconds.json");
        if (name == "ensemble" || MethodManifest.TryLoad(storeDir) is not null)
        {
            return File.Exists(timingPath) ? ReadSeconds(System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(timingPath))?["buildSeconds"]) : double.NaN;
        }
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
        double seconds = watch.Elapsed.TotalSeconds;
        JsonFile.Save(timingPath, new { buildSeconds = seconds });
        return seconds;
    }

    /// <summary>A method's scores for a set of queries (and, for a stepwise method, per step), with the seconds scoring took.</summary>
    private sealed record Scored(float[] Scores, float[]? StepScores, long[]? Timesteps, double Seconds);

    /// <summary>
    /// The scores of <paramref name="queries"/> at <paramref name="damping"/> (null: the method has none), read from
    /// <paramref name="folder"/> when scored before from the same store at the same damping, else scored now (the store
    /// re-damped first when it holds another λ) and saved.
    /// </summary>
    private static Scored ScoreCached(EvaluateVerb o, string name, string storeDir, string referenceDir, SessionSettings session, List<AttributionQuery> queries, int rows,
        double? damping, IDampedMethod? damped, GramCache grams, string folder, CancellationToken cancel)
    {
        cancel.ThrowIfCancellationRequested();
        Directory.CreateDirectory(folder);
        string stem = damping is null || folder == Path.Combine(o.Out, "scores") ? name : $"{name}-lambda-{Lambda(damping.Value)}";
        var scoresPath = Path.Combine(folder, stem + ".npy");
        var stepsPath = Path.Combine(folder, stem + "-steps.npy");
        var timingPath = Path.Combine(folder, stem + ".json");
        var saved = File.Exists(timingPath) ? System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(timingPath)) : null;
        // Scores are reused only from the same store at the same damping, for as many queries.
        bool same = saved?["store"]?.GetValue<string>() == Path.GetFullPath(storeDir)
            && (damping is null ? saved?["damping"] is null : saved?["damping"]?.GetValue<double>() == damping.Value);
        long[]? timesteps = saved?["steps"]?.Deserialize<long[]>();
        var cached = same ? TryReadMatrix(scoresPath) : null;
        var cachedSteps = same && timesteps is not null ? TryReadMatrix(stepsPath) : null;
        if (cached is { } hit && hit.Header.Rows == queries.Count && (timesteps is null || cachedSteps is not null))
        {
            return new Scored(hit.Values, cachedSteps?.Values, timesteps, ReadSeconds(saved?["scoreSeconds"]));
        }
        if (damping is { } l && damped is not null && MethodManifest.Require(storeDir, name).Settings["damping"]?.GetValue<double>() != l)
        {
            damped.Redamp(storeDir, l, grams);
        }
        var watch = System.Diagnostics.Stopwatch.StartNew();
        float[] scores;
        float[]? stepScores = null;
        using (var scorer = AttributionMethods.Open(storeDir, name == "ensemble" ? null : referenceDir, session))
        {
            if (scorer.Rows != rows)
            {
                throw new UserInputException($"{storeDir}: scores {scorer.Rows} rows; the training set has {rows}");
            }
            if (scorer is IStepwiseScorer stepScorer)
            {
                timesteps = stepScorer.Steps.ToArray();
                stepScores = stepScorer.StepScores(queries, cancel);
                scores = IStepwiseScorer.MeanOverSteps(stepScores, queries.Count, timesteps.Length, rows);
                NpyFormat.WriteMatrix(stepsPath, stepScores, queries.Count, (long)timesteps.Length * rows);
            }
            else
            {
                timesteps = null;
                scores = scorer.Scores(queries, cancel);
            }
        }
        double seconds = watch.Elapsed.TotalSeconds;
        NpyFormat.WriteMatrix(scoresPath, scores, queries.Count, rows);
        JsonFile.Save(timingPath, new { store = Path.GetFullPath(storeDir), damping, scoreSeconds = seconds, steps = timesteps });
        return new Scored(scores, stepScores, timesteps, seconds);
    }

    private static double? TrySecondsPerModel(string path) =>
        File.Exists(path) ? System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))?["secondsPerModel"]?.GetValue<double>() : null;

    /// <summary>A timing saved as a number, or as "NaN" where it was not measured (a store built by an earlier run).</summary>
    private static double ReadSeconds(System.Text.Json.Nodes.JsonNode? node) => node is null ? double.NaN
        : node.GetValueKind() == System.Text.Json.JsonValueKind.String ? double.Parse(node.GetValue<string>(), CultureInfo.InvariantCulture)
        : node.GetValue<double>();

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

    /// <summary>
    /// Permutations in each method's permutation test: the measured outputs of the M subsets are permuted among the
    /// subsets (one permutation for every query at once, <see cref="Lds.PermutationTest"/>), so p ≥ 1/1001.
    /// </summary>
    private const int Permutations = 1000;

    /// <summary>What a method's setting costs: its store's build, its queries and its bytes.</summary>
    /// <param name="BuildSeconds">Building the store (NaN: built by an earlier run that did not record it).</param>
    /// <param name="BuildSecondsPerExample">The same per training example.</param>
    /// <param name="ScoreSeconds">Scoring every test query (NaN where read back from a run that did not record it).</param>
    /// <param name="QueryMilliseconds">The same per query.</param>
    /// <param name="StoreBytes">The store folder's size.</param>
    private sealed record Costs(double BuildSeconds, double BuildSecondsPerExample, double ScoreSeconds, double QueryMilliseconds, long StoreBytes);

    /// <summary>One method's LDS row: the mean LDS with its bootstrap interval over queries, the permutation test, and costs.</summary>
    private sealed record LdsRow(string Method, string Output, double Lds, double Low, double High, double P, double NullLow, double NullHigh, int Queries,
        Costs Costs, double[] PerQuery)
    {
        public LdsRow(string method, string output, Interval interval, PermutationResult test, Costs costs, double[] perQuery)
            : this(method, output, interval.Mean, interval.Low, interval.High, test.P, test.NullLow, test.NullHigh, interval.Count, costs, perQuery)
        {
        }

        /// <summary>Mean LDS on the validation queries at the chosen setting (for the final image's loss).</summary>
        public double ValidationLds { get; init; } = double.NaN;

        /// <summary>The damping chosen on the validation queries; null for a method without one.</summary>
        public double? Damping { get; init; }

        /// <summary>Every damping tried with its validation LDS; null for a method without one.</summary>
        public IReadOnlyList<DampingPoint>? DampingSweep { get; init; }

        /// <summary>The mean noise ceiling of the row's measured output; null without one (S = 1, or another measured output).</summary>
        public double? Ceiling { get; init; }

        /// <summary>The LDS divided by the mean noise ceiling; null without one (S = 1, another measured output, or a ceiling of 0).</summary>
        public double? FractionOfCeiling { get; init; }

        /// <summary>The command line that produced the row.</summary>
        public string Command { get; init; } = "";

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
        SessionSettings session, List<AttributionQuery> queries, IReadOnlyList<SubsetModel> plan, int[][] subsets, int rows, Costs costs, CancellationToken cancel)
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
        // Each step's loss under every subset model, per training seed, averaged over the seeds.
        var measured = NoiseCeiling.MeanOverSeeds(plan.GroupBy(p => p.SeedIndex).Select(seed => MeasureModels(Path.Combine(o.Out, "measured", $"{method}-seed-{seed.Key}.npy"), m, pairs, $"measure trajectory step losses (seed {seed.Key})", j =>
        {
            var model = ModelDirectory.Open(seed.Single(p => p.Subset == j).Directory);
            using var denoiser = model.OpenDenoiser(session);
            return DiffusionLoss.MeasureStates(denoiser, inputs.Select(x => x.Noisy).ToArray(), inputs.Select(x => x.Target).ToArray(), inputs.Select(x => x.T).ToArray())
                .Select(v => (float)v).ToArray();
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
}
