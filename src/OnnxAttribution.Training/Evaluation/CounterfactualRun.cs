using System.Globalization;
using System.Text.Json;
using System.Text;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Imaging;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Sampling;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Training.Evaluation;

/// <summary>
/// Remove-and-retrain as one resumable run: for each query, the model retrained without each store's top k training
/// images and without k random ones, compared by the query's loss and pixels (docs/results/counterfactual*).
/// </summary>
public static class CounterfactualRun
{
    /// <summary>The seed stream of the random removals (removal r draws from stream index r).</summary>
    private const string RandomRemovalStream = "counterfactual random removal";

    /// <summary>What a counterfactual run retrains: the stores' model with its own recipe, the methods and the queries.</summary>
    private sealed record CounterfactualSetup(string[] Stores, List<string> Methods, StoreSource Source, ModelDirectory Reference, Core.Data.ImageDataset Data,
        TrainingRecipe Recipe, long TrainingSeed, int K);

    /// <summary>
    /// Runs (or continues) a remove-and-retrain check into <see cref="CounterfactualOptions.Out"/>: for each query, the
    /// model retrained without each store's top k and without k random images, compared by the query's loss and pixels.
    /// </summary>
    /// <exception cref="UserInputException">A store cannot be used (no training record, other model), or the options do not fit the folder's earlier run.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancel"/> fired; every model trained so far is kept.</exception>
    public static EvaluationReport Run(CounterfactualOptions o, CancellationToken cancel = default)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var setup = CounterfactualSetupOf(o);
        // Query q's removal depends on its store and q only, random removal r on the seed and r: more queries, random
        // models or stores reuse every model already retrained.
        EvaluationFolder.CheckSettings(o.Out,
            new { kind = "counterfactual", model = Path.GetFullPath(setup.Source.ModelDirectory), subset = setup.Source.Subset, k = setup.K,
                queries = o.Queries, randomModels = o.RandomModels, seed = o.Seed, recipe = setup.Recipe, samplingSteps = o.SamplingSteps },
            "queries", "randomModels");
        var session = new SessionSettings(ExecutionDevice.Cpu, o.Threads);
        // A class-conditional model's query q is generated under label q mod classes, as the LDS run's.
        var labels = LdsRun.QueryLabels(setup.Reference.Metadata.Condition, o.Queries, 0);
        var queries = GeneratedQueries.Generate(setup.Reference, EvaluationFolder.QuerySeeds(o.Queries), SamplerKind.Ddim, o.SamplingSteps, session, cancel, labels);
        var top = new Dictionary<string, OnnxAttribution.Store.TopKResult[]>(StringComparer.Ordinal);
        for (int i = 0; i < setup.Stores.Length; i++)
        {
            using var scorer = AttributionMethods.Open(setup.Stores[i], setup.Source.ModelDirectory, session);
            top[setup.Methods[i]] = scorer.TopK(queries, setup.K, cancel);
        }
        var removals = new List<(string Name, int[] Removed)>();
        for (int r = 0; r < o.RandomModels; r++)
        {
            var u = new double[setup.Data.Count];
            new CounterRng(SeedStreams.Derive(o.Seed, RandomRemovalStream, r, 0), 0).FillUniform(u);
            removals.Add(($"random-{r:D2}", Enumerable.Range(0, setup.Data.Count).OrderBy(i => u[i]).ThenBy(i => i).Take(setup.K).ToArray()));
        }
        for (int q = 0; q < o.Queries; q++)
        {
            removals.AddRange(setup.Methods.Select(method => (TopModelName(method, q), top[method][q].Indices.Select(i => checked((int)i)).ToArray())));
        }
        var progress = new EvaluationFolder.TrainingProgress(o.Observer, "retrain without removed rows", removals.Count, setup.Recipe.Steps);
        for (int m = 0; m < removals.Count; m++)
        {
            cancel.ThrowIfCancellationRequested();
            var removed = removals[m].Removed.ToHashSet();
            var keep = Enumerable.Range(0, setup.Data.Count).Where(i => !removed.Contains(i)).ToArray();
            RecipeTrainer.TrainAndExport(setup.Recipe, setup.Data, keep, setup.TrainingSeed, $"without {removals[m].Name}", Path.Combine(o.Out, "models", removals[m].Name + "-run"),
                Path.Combine(o.Out, "models", removals[m].Name), withVjp: false, progress.For(m), cancel);
        }
        return CompareRetrained(o, setup, queries, top, session, clock, cancel);
    }

    /// <summary>The stores (one model, one method each), the model they attribute and the recipe it was trained with.</summary>
    private static CounterfactualSetup CounterfactualSetupOf(CounterfactualOptions o)
    {
        var stores = o.Stores.ToArray();
        if (stores.Length == 0)
        {
            throw new SettingException("Stores", "(none)", "a remove-and-retrain check needs one or more method stores on the model to check");
        }
        var sources = stores.Select(st => StoreSource.TryLoad(st) ?? throw new UserInputException($"{st} has no {StoreFiles.Source}: it does not say which model and data it was built from")).ToList();
        var source = sources[0];
        for (int i = 1; i < stores.Length; i++)
        {
            if (Path.GetFullPath(sources[i].ModelDirectory) != Path.GetFullPath(source.ModelDirectory) || sources[i].Subset != source.Subset)
            {
                throw new UserInputException($"{stores[i]}: built on {sources[i].ModelDirectory} rows {sources[i].Subset}; " +
                    $"{stores[0]} on {source.ModelDirectory} rows {source.Subset}. Every --store must attribute the same model and rows");
            }
        }
        var reference = ModelDirectory.Open(source.ModelDirectory);
        var training = reference.Metadata.Training
            ?? throw new UserInputException($"{reference.Path}/model.json: field 'training' is missing; the counterfactual retrains with the model's own recipe");
        var data = source.LoadData();
        int baseChannels = reference.Metadata.Architecture?["baseChannels"]?.GetValue<int>()
            ?? throw new UserInputException($"{reference.Path}/model.json: field 'architecture.baseChannels' is missing");
        // The model's own recipe: the same data minus the removed rows, the same seed and steps; for a LoRA fine-tune the same
        // base and adapters, for a class-conditional model the same classes, for a text-conditioned one the same captions.
        var lora = reference.Metadata.Lora;
        if (lora is not null && !Directory.Exists(lora.Base))
        {
            throw new UserInputException($"{reference.Path}/model.json: the LoRA fine-tune's base '{lora.Base}' is not found from here; run from the folder it was trained in");
        }
        var recipe = new TrainingRecipe
        {
            Steps = training.Steps,
            BatchSize = training.BatchSize,
            LearningRate = training.LearningRate,
            EmaDecay = training.EmaDecay,
            BaseChannels = baseChannels,
            Classes = reference.Metadata.Condition?.Classes ?? 0,
            Text = reference.Metadata.Architecture?["text"]?.Deserialize<TextConditionSettings>(Runtime.Models.ModelMetadata.JsonOptions),
            BaseModel = lora?.Base,
            Lora = lora?.Settings,
            Schedule = reference.Metadata.Schedule == TrainingRecipe.DefaultSchedule ? null : reference.Metadata.Schedule,
            Threads = o.TrainThreads,
        };
        var methods = stores.Select(st => AttributionMethods.MethodOf(st).Name).ToList();
        if (methods.Distinct(StringComparer.Ordinal).Count() != methods.Count)
        {
            throw new UserInputException($"two stores of one method ({string.Join(", ", methods)}) among {string.Join(", ", stores)}: check them in separate evaluation folders");
        }
        if (o.RemoveTop >= data.Count)
        {
            throw new SettingException("RemoveTop", o.RemoveTop, $"must be between 1 and N − 1 = {data.Count - 1}");
        }
        return new CounterfactualSetup(stores, methods, source, reference, data, recipe, training.Seed, o.RemoveTop);
    }

    /// <summary>Regenerates every query from the same noise with each retrained model, measures pixel distance and loss change, writes the results.</summary>
    private static EvaluationReport CompareRetrained(CounterfactualOptions o, CounterfactualSetup setup, List<AttributionQuery> queries, Dictionary<string, OnnxAttribution.Store.TopKResult[]> top,
        SessionSettings session, System.Diagnostics.Stopwatch clock, CancellationToken cancel)
    {
        var (reference, methods, k) = (setup.Reference, setup.Methods, setup.K);
        var queryImages = TrakMethod.Images(queries);
        int c = reference.Metadata.Channels, size = reference.Metadata.ImageSize, d = c * size * size;
        var plan = new FeaturizationPlan(FeaturizationPlan.Evenly(reference.Metadata.Schedule.Timesteps, 100), 3, 1_000_003, MeasurementKind.Loss);
        double[] baseLoss;
        var conditions = TrakMethod.Conditions(queries);
        using (var denoiser = reference.OpenDenoiser(session))
        {
            baseLoss = DiffusionLoss.Measure(denoiser, reference.CreateSchedule(), plan, queryImages, o.Queries, conditions: conditions);
        }
        // Only the queries a model is compared on are regenerated: every query for a random removal, query q for its top-k's
        // (a conditional model's under the query's own label).
        (float[] Images, double[] Loss) Retrained(string name, int[] which)
        {
            var model = ModelDirectory.Open(Path.Combine(o.Out, "models", name));
            long[] labels = conditions.Length == 0 ? [] : [.. which.Select(q => conditions[q])];
            var images = TrakMethod.Images(GeneratedQueries.Generate(model, which.Select(q => (long)q).ToArray(), SamplerKind.Ddim, o.SamplingSteps, session, cancel,
                labels.Length == 0 ? null : new QueryCondition(labels)));
            var originals = which.SelectMany(q => queryImages.AsSpan(q * d, d).ToArray()).ToArray();
            using var denoiser = model.OpenDenoiser(session);
            return (images, DiffusionLoss.Measure(denoiser, model.CreateSchedule(), plan, originals, which.Length, conditions: labels));
        }
        double Distance(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
        {
            double sum = 0;
            for (int i = 0; i < d; i++)
            {
                sum += (a[i] - b[i]) * (a[i] - b[i]);
            }
            return Math.Sqrt(sum / d);
        }
        float[] Query(float[] images, int q) => images.AsSpan(q * d, d).ToArray();
        var all = Enumerable.Range(0, o.Queries).ToArray();
        var randoms = Enumerable.Range(0, o.RandomModels).Select(r => Retrained($"random-{r:D2}", all)).ToList();
        var randDist = all.Select(q => randoms.Average(r => Distance(Query(queryImages, q), Query(r.Images, q)))).ToArray();
        var randLoss = all.Select(q => randoms.Average(r => r.Loss[q] - baseLoss[q])).ToArray();

        int columns = 1 + methods.Count + randoms.Count;
        var tiles = new float[o.Queries * columns * d];
        var captions = new List<string?>();
        var perMethod = methods.Select(_ => new List<object>()).ToList();
        var topDist = methods.Select(_ => new double[o.Queries]).ToArray();
        var topLoss = methods.Select(_ => new double[o.Queries]).ToArray();
        for (int q = 0; q < o.Queries; q++)
        {
            int tile = q * columns;
            queryImages.AsSpan(q * d, d).CopyTo(tiles.AsSpan(tile * d, d));
            captions.Add($"seed {q}");
            for (int i = 0; i < methods.Count; i++)
            {
                var retrained = Retrained(TopModelName(methods[i], q), [q]);
                topDist[i][q] = Distance(Query(queryImages, q), retrained.Images);
                topLoss[i][q] = retrained.Loss[0] - baseLoss[q];
                perMethod[i].Add(new { query = q, removed = top[methods[i]][q].Indices, pixelRmsTop = topDist[i][q], pixelRmsRandom = randDist[q],
                    lossChangeTop = topLoss[i][q], lossChangeRandom = randLoss[q] });
                retrained.Images.CopyTo(tiles.AsSpan((tile + 1 + i) * d, d));
                captions.Add($"{methods[i]} {topDist[i][q]:F2}");
            }
            for (int r = 0; r < randoms.Count; r++)
            {
                randoms[r].Images.AsSpan(q * d, d).CopyTo(tiles.AsSpan((tile + 1 + methods.Count + r) * d, d));
                captions.Add($"random {Distance(Query(queryImages, q), Query(randoms[r].Images, q)):F2}");
            }
        }
        var results = methods.Select((method, i) => new CounterfactualRow(method, setup.Stores[i], topDist[i].Average(), randDist.Average(), topLoss[i].Average(), randLoss.Average(),
            all.Count(q => topLoss[i][q] > randLoss[q]), all.Count(q => topDist[i][q] > randDist[q]), perMethod[i])).ToList();
        var png = Path.Combine(o.Out, "before-after.png");
        ImageGrid.Write(png, tiles, o.Queries * columns, c, size, size, new GridLayout(columns, 5), captions);
        var result = new { model = setup.Source.ModelDirectory, k, n = setup.Data.Count, queries = o.Queries, randomModels = randoms.Count, methods = results,
            png, seconds = clock.Elapsed.TotalSeconds };
        JsonFile.Save(Path.Combine(o.Out, "counterfactual.json"), result);
        var table = new StringBuilder();
        table.AppendLine(CultureInfo.InvariantCulture, $"| method | pixel RMS change, top {k} removed | random {k} removed | query loss change, top {k} | " +
            $"random {k} | queries where top > random (loss) | (pixels) |");
        table.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var r in results)
        {
            table.AppendLine(CultureInfo.InvariantCulture, $"| {r.Method} | {r.PixelRmsTop:F3} | {r.PixelRmsRandom:F3} | {r.LossChangeTop:+0.0000;-0.0000} | " +
                $"{r.LossChangeRandom:+0.0000;-0.0000} | {r.QueriesLossAboveRandom}/{o.Queries} | {r.QueriesPixelsAboveRandom}/{o.Queries} |");
        }
        return EvaluationFolder.Report(Path.Combine(o.Out, "counterfactual.md"), table.ToString(), result,
            $"remove top {k} of {setup.Data.Count}, {o.Queries} queries, {randoms.Count} random removals; {png}");
    }

    private static string TopModelName(string method, int query) => $"{method}/query-{query:D3}-top";

    /// <summary>One method's remove-and-retrain result: means over queries, against the same random removals.</summary>
    private sealed record CounterfactualRow(string Method, string Store, double PixelRmsTop, double PixelRmsRandom, double LossChangeTop, double LossChangeRandom,
        int QueriesLossAboveRandom, int QueriesPixelsAboveRandom, List<object> PerQuery);
}
