using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Store;

namespace OnnxAttribution.Training.Tests;

/// <summary>
/// Diffusion-TracIn and ReTrac (Xie et al. 2024) on small U-Nets exported as checkpoints (forward.onnx + model.json) and 40
/// embedded training images. The per-example gradients come from the engine's own <see cref="GradientSource"/> (checked
/// against TorchSharp autograd elsewhere); what is checked independently here is everything after them: the projection,
/// the learning-rate weighting, the sum over checkpoints and ReTrac's division by the gradient norms.
/// </summary>
[TestFixture]
public sealed class TracInTests
{
    private const int Rows = 40;
    private const int Dim = 1024;
    private const long Seed = 5;
    private string _dir = "";
    private string _model = "";
    private string _unitRate = "";
    private ImageDataset _data = null!;

    [OneTimeSetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("oa-tracin-").FullName;
        _model = Path.Combine(_dir, "model");
        _unitRate = Path.Combine(_dir, "ckpt-unit");
        var schedule = new ScheduleSettings(ScheduleKind.Linear, 1000);
        Support.TinyAttributionModel.Export(_model);
        using var net = Net(seed: 3);
        // The same weights as a checkpoint with η = 1, and two more with other weights for the multi-checkpoint test.
        OnnxExporter.Export(net, schedule, null, _unitRate, "tiny-unit", checkpoint: new CheckpointInfo(0, 1.0));
        using var other = Net(seed: 4);
        OnnxExporter.Export(other, schedule, null, Path.Combine(_dir, "ckpt-b"), "tiny-b", checkpoint: new CheckpointInfo(100, 0.5));
        _data = Support.TinyAttributionModel.EmbeddedRows(Rows);
    }

    private static UNet Net(int seed) => new(Support.TinyAttributionModel.Config, seed);

    [OneTimeTearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private MethodSettings Settings(params string[] checkpoints) => new()
    {
        Checkpoints = checkpoints,
        Dim = Dim,
        ProjectionSeed = 11,
        Timesteps = 4,
        NoiseDraws = 2,
        NoiseSeed = 2,
        Seed = Seed,
        BatchSize = 16,
    };

    /// <summary>Builds (once) a method store of <paramref name="method"/> in folder <paramref name="name"/>.</summary>
    private string Build(string name, string method, MethodSettings settings)
    {
        var dir = Path.Combine(_dir, name);
        if (MethodManifest.TryLoad(dir) is null)
        {
            AttributionMethods.Find(method).Build(Request(dir, settings));
        }
        return dir;
    }

    private MethodBuildRequest Request(string dir, MethodSettings settings) => new()
    {
        ModelDirectory = _model,
        Data = _data,
        Source = new StoreSource(_model, "embedded", $"0:{Rows}", 16),
        OutDirectory = dir,
        Settings = settings,
    };

    private string UnitStore() => Build("tracin-unit", "tracin", Settings(_unitRate));

    private float[] Images(params int[] rows) => rows.SelectMany(r => _data.Image(r).ToArray()).ToArray();

    /// <summary>Queries: training images with a little noise, and a blend of two.</summary>
    private List<AttributionQuery> Queries()
    {
        var rng = new Random(2);
        var queries = new[] { 3, 21, 8 }.Select(r => new AttributionQuery($"near {r}", Images(r).Select(v => Math.Clamp(v + 0.2f * (float)(rng.NextDouble() - 0.5), -1f, 1f)).ToArray())).ToList();
        queries.Add(new AttributionQuery("blend", Images(10).Zip(Images(30), (a, b) => 0.5f * (a + b)).ToArray()));
        return queries;
    }

    /// <summary>Exact per-example gradients of a plan on <paramref name="images"/> at the unit-rate checkpoint: count × p.</summary>
    private float[] Gradients(FeaturizationPlan plan, float[] images, long[]? rows = null)
    {
        using var model = new GradientModel(_unitRate, plan, new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, Dim, 11));
        int count = images.Length / _data.ImageLength;
        var g = new float[count * model.Extractor.Source.Dimension];
        model.Extractor.Source.Compute(images, count, g, rows: rows);
        return g;
    }

    private static FeaturizationPlan QueryPlan => new(FeaturizationPlan.Evenly(1000, 4), 2, 2, MeasurementKind.Loss);

    private static FeaturizationPlan TrainPlan(long round) => FeaturizationPlan.OneRandomTimestep(Seed, round, MeasurementKind.Loss);

    private static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++)
        {
            s += (double)a[i] * b[i];
        }
        return s;
    }

    [Test]
    public void Scores_OneCheckpointUnitRate_AreProjectedDotProductsOfExactGradients()
    {
        using var scorer = AttributionMethods.Open(UnitStore());
        var queries = Queries();
        var scores = scorer.Scores(queries);

        var gq = Gradients(QueryPlan, TrakMethod.Images(queries));
        var g = Gradients(QueryPlan, Images(Enumerable.Range(0, Rows).ToArray()), Enumerable.Range(0, Rows).Select(r => (long)r).ToArray());
        int p = g.Length / Rows;
        var projector = new DenseProjector(p, Dim, ProjectionKind.Rademacher, 11);
        var phi = new float[Rows * Dim];
        var phiQ = new float[queries.Count * Dim];
        projector.ProjectBatch(g, Rows, phi);
        projector.ProjectBatch(gq, queries.Count, phiQ);
        double rho = 0;
        for (int q = 0; q < queries.Count; q++)
        {
            var byHand = Enumerable.Range(0, Rows).Select(i => Dot(phiQ.AsSpan(q * Dim, Dim), phi.AsSpan(i * Dim, Dim))).ToArray();
            var exact = Enumerable.Range(0, Rows).Select(i => Dot(gq.AsSpan(q * p, p), g.AsSpan(i * p, p))).ToArray();
            double scale = byHand.Max(Math.Abs);
            for (int i = 0; i < Rows; i++)
            {
                Assert.That(scores[q * Rows + i], Is.EqualTo(byHand[i]).Within(1e-4 * scale), $"query {q}, row {i}");
                // JL: a projected inner product is within a few ‖a‖‖b‖√(2/k) of the exact one.
                double bound = 4 * Math.Sqrt(Dot(gq.AsSpan(q * p, p), gq.AsSpan(q * p, p)) * Dot(g.AsSpan(i * p, p), g.AsSpan(i * p, p)) * 2.0 / Dim);
                Assert.That(scores[q * Rows + i], Is.EqualTo(exact[i]).Within(bound), $"query {q}, row {i}: projected vs exact");
            }
            rho += RankCorrelation.Spearman(scores.AsSpan(q * Rows, Rows).ToArray().Select(v => (double)v).ToArray(), exact);
        }
        TestContext.Out.WriteLine($"mean Spearman(projected k={Dim}, exact) = {rho / queries.Count:F4}");
        Assert.That(rho / queries.Count, Is.GreaterThanOrEqualTo(0.8));
    }

    [Test]
    public void Scores_ReTrac_AreTracInDividedByExactGradientNorms()
    {
        // A copy of the finished TracIn store becomes a ReTrac store without recomputing anything.
        var tracin = UnitStore();
        var retrac = Path.Combine(_dir, "retrac-unit");
        CopyDirectory(tracin, retrac);
        AttributionMethods.Find("retrac").Build(Request(retrac, Settings(_unitRate)));
        Assert.That(MethodManifest.TryLoad(retrac)!.Method, Is.EqualTo("retrac"));
        var featuresPath = Path.Combine(TracInMethod.CheckpointFolder(0), StoreFiles.Features);
        Assert.That(File.ReadAllBytes(Path.Combine(retrac, featuresPath)), Is.EqualTo(File.ReadAllBytes(Path.Combine(tracin, featuresPath))));

        var norms = SidecarMatrix.ReadAll(Path.Combine(retrac, TracInMethod.CheckpointFolder(0), StoreFiles.Norms), Rows, 1);
        var g = Gradients(QueryPlan, Images(Enumerable.Range(0, Rows).ToArray()), Enumerable.Range(0, Rows).Select(r => (long)r).ToArray());
        int p = g.Length / Rows;
        for (int i = 0; i < Rows; i++)
        {
            double exact = Math.Sqrt(Dot(g.AsSpan(i * p, p), g.AsSpan(i * p, p)));
            Assert.That(norms[i], Is.EqualTo(exact).Within(1e-5 * exact), $"row {i}");
        }
        var queries = Queries();
        using var t = AttributionMethods.Open(tracin);
        using var r = AttributionMethods.Open(retrac);
        Assert.That(r.Method, Is.EqualTo("retrac"));
        var st = t.Scores(queries);
        var sr = r.Scores(queries);
        for (int k = 0; k < st.Length; k++)
        {
            Assert.That(sr[k], Is.EqualTo(st[k] / norms[k % Rows]), $"score {k}");
        }
    }

    [Test]
    public void Scores_ReTracOnTrainedCheckpoints_RankEachQuerysOwnTrainingImageHigh()
    {
        // Checkpoints kept by a short training run on the 40 images and exported as TracIn uses them. An untrained network
        // gives no signal here: its loss residual ε̂ − ε is the example's own random noise, independent of the query's.
        var run = Path.Combine(_dir, "run");
        var options = new TrainOptions
        {
            Data = _data,
            Model = Support.TinyAttributionModel.Config,
            Recipe = new TrainingRecipe
            {
                Steps = 60,
                BatchSize = 16,
                LearningRate = 2e-3,
                WarmupSteps = 20,
                EmaDecay = 0.999,
                Threads = 1,
                CheckpointEvery = 20,
                KeepCheckpointsEvery = 20,
                ProgressEvery = 20,
            },
            Seed = 9,
            CheckpointDirectory = run,
        };
        using (var result = DdpmTrainer.Train(options))
        {
            TrainingRunInfo.Of(options, result, "embedded", $"0:{Rows}").Save(run);
        }
        var checkpoints = new[] { 20, 40, 60 }.Select(step => ModelExport.ExportStep(run, step, Path.Combine(_dir, $"trained-{step}"), $"step-{step}").Directory).ToArray();
        var store = Build("retrac-trained", "retrac", Settings(checkpoints) with { Timesteps = 10, NoiseDraws = 2 });
        using var scorer = AttributionMethods.Open(store);
        var scores = scorer.Scores(Enumerable.Range(0, Rows).Select(r => new AttributionQuery($"row {r}", Images(r))).ToList());
        Assert.That(scores, Has.All.Matches<float>(float.IsFinite));
        var ranks = Enumerable.Range(0, Rows).Select(q =>
        {
            var row = scores.AsSpan(q * Rows, Rows).ToArray();
            return 1 + Enumerable.Range(0, Rows).Count(i => row[i] > row[q]);
        }).ToArray();
        double mean = ranks.Average();
        TestContext.Out.WriteLine($"rank of the query's own training image, each of the {Rows} rows as query: mean {mean:F1}; ranks {string.Join(" ", ranks)}");
        // By chance the mean rank is 20.5, with a standard deviation of 11.5/√40 ≈ 1.8. With the training side on the query's
        // fixed plan every row ranks its own image first (mean 1.0 when written); with one random timestep per example and
        // checkpoint, as before, it was 12.9.
        Assert.That(mean, Is.LessThan(2));
    }

    [Test]
    public void ExampleTimestep_SameDrawsForAnySeedRoundAndRow_SpreadOverAllTimesteps()
    {
        var plan = TrainPlan(0);
        var t = Enumerable.Range(0, 4000).Select(r => plan.ExampleTimestep(r, 1000)).ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(Enumerable.Range(0, 4000).Select(r => TrainPlan(0).ExampleTimestep(r, 1000)), Is.EqualTo(t));
            Assert.That(t, Has.All.InRange(0L, 999L));
            Assert.That(t.Average(), Is.EqualTo(499.5).Within(15)); // σ of the mean: 289/√4000 ≈ 4.6
            Assert.That(t.Count(x => x < 100), Is.InRange(330, 470));
            Assert.That(t.Zip(Enumerable.Range(0, 4000).Select(r => TrainPlan(1).ExampleTimestep(r, 1000))).Count(x => x.First == x.Second), Is.LessThan(20));
            Assert.That(t.Zip(Enumerable.Range(0, 4000).Select(r => FeaturizationPlan.OneRandomTimestep(Seed + 1, 0, MeasurementKind.Loss)
                .ExampleTimestep(r, 1000))).Count(x => x.First == x.Second), Is.LessThan(20));
        });
    }

    [Test]
    public void Featurize_OneRandomTimestep_SameBytesForAnyBatchSize()
    {
        FeaturizeOptions Options(string name, int batch) => new()
        {
            ModelDirectory = _unitRate,
            Data = _data,
            Plan = TrainPlan(0),
            Projection = new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, 64, 4),
            OutDirectory = Path.Combine(_dir, name),
            BatchSize = batch,
            GradientNorms = true,
        };
        using (TrakEngine.Featurize(Options("batch-16", 16)))
        {
        }
        using (TrakEngine.Featurize(Options("batch-7", 7)))
        {
        }
        foreach (var file in new[] { StoreFiles.Features, StoreFiles.Norms, StoreFiles.Meta })
        {
            Assert.That(File.ReadAllBytes(Path.Combine(_dir, "batch-7", file)), Is.EqualTo(File.ReadAllBytes(Path.Combine(_dir, "batch-16", file))), file);
        }
        // One row alone gets the gradient it gets inside a batch: the draw depends on its row, not its place.
        var batch = Gradients(TrainPlan(0), Images(3, 4, 5), [3, 4, 5]);
        var alone = Gradients(TrainPlan(0), Images(5), [5]);
        Assert.That(alone, Is.EqualTo(batch.AsSpan(2 * alone.Length, alone.Length).ToArray()).Within(1e-6f * alone.Max(MathF.Abs)));
        using var store = FeatureStore.Open(Path.Combine(_dir, "batch-7"));
        Assert.That(TrakScorer.PlanOf(store.Meta).RandomTimestepRound, Is.EqualTo(0));
    }

    [Test]
    public void Build_NoCheckpoints_SaysHowToMakeThem()
    {
        Assert.That(() => Build("none", "tracin", Settings()), Throws.TypeOf<UserInputException>()
            .With.Message.Contains("--keep-checkpoints-every").And.Message.Contains("export").And.Message.Contains("--step"));
        Assert.That(() => Build("no-rate", "tracin", Settings(_model)), Throws.TypeOf<ModelFileException>().With.Message.Contains("'checkpoint'"));
    }

    [Test]
    public void GenerallyInfluential_CountsRowsAboveTheFraction()
    {
        var tops = new[]
        {
            new TopKResult([1, 2, 3], [3f, 2f, 1f]),
            new TopKResult([1, 4, 5], [3f, 2f, 1f]),
            new TopKResult([1, 2, 6], [3f, 2f, 1f]),
            new TopKResult([7, 8, 9], [3f, 2f, 1f]),
            new TopKResult([1, 8, 2], [3f, 2f, 1f]),
        };
        var summary = GenerallyInfluential.Of(tops, 0.4);
        Assert.Multiple(() =>
        {
            // More than 40 % of 5 = 2 queries: row 1 (4 queries) and row 2 (3); row 8 (2) is not more than 2.
            Assert.That(summary.Influential, Is.EqualTo(new[] { new RowFrequency(1, 4), new RowFrequency(2, 3) }));
            Assert.That(summary.Count, Is.EqualTo(2));
            Assert.That(summary.DistinctRows, Is.EqualTo(9));
            Assert.That(summary.MostFrequent[2], Is.EqualTo(new RowFrequency(8, 2)));
        });
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (var dir in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
        {
            Directory.CreateDirectory(dir.Replace(from, to, StringComparison.Ordinal));
        }
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            File.Copy(file, file.Replace(from, to, StringComparison.Ordinal));
        }
    }
}
