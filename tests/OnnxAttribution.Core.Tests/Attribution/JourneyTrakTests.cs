using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Runtime.Sampling;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests.Attribution;

/// <summary>
/// Journey-TRAK (Georgiev et al. 2023) on a small untrained U-Net and 40 embedded training images, three DDIM steps,
/// k = 512: the store's timesteps, a planted duplicate, agreement with TRAK scoring done by hand, resumability.
/// </summary>
[TestFixture]
public sealed class JourneyTrakTests
{
    private const int Rows = 40;
    private const int Steps = 3;
    private const int Dim = 512;
    private const long ProjectionSeed = 11;
    private string _dir = "";
    private string _model = "";
    private string _store = "";
    private ImageDataset _data = null!;
    private NoiseSchedule _schedule = null!;
    private readonly JourneyTrakMethod _method = new();

    [OneTimeSetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("oa-journey-").FullName;
        _model = Path.Combine(_dir, "model");
        TinyModelFixture.CopyTo(_model);
        _data = new DatasetLocator().Load("embedded", $"0:{Rows}", null);
        _schedule = ModelDirectory.Open(_model).CreateSchedule();
        _store = Path.Combine(_dir, "journey");
        _method.Build(Request(_data, "0:40", _store, Dim, batchSize: 8));
    }

    [OneTimeTearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    /// <summary>The damping of these tests' stores.</summary>
    private const double ToyDamping = 1e-3;

    private MethodBuildRequest Request(ImageDataset data, string subset, string outDirectory, int dim, int batchSize, IProgress<MethodProgress>? progress = null, int steps = Steps) => new()
    {
        ModelDirectory = _model,
        Data = data,
        Source = new StoreSource(_model, "embedded", subset, 16),
        OutDirectory = outDirectory,
        // λ = 1e-3, not journey-trak's default (chosen on a trained model): on this untrained network only weak damping
        // keeps the planted row first at t = 999, where every row's features are nearly alike.
        Settings = new MethodSettings { JourneySteps = steps, Dim = dim, NoiseSeed = 5, ProjectionSeed = ProjectionSeed, BatchSize = batchSize, Damping = ToyDamping },
        Progress = progress,
    };

    private IStepwiseScorer OpenScorer() => (IStepwiseScorer)AttributionMethods.Open(_store, _model);

    [Test]
    public void Build_ThreeSteps_StoreTimestepsAreTheDdimSamplers()
    {
        using var denoiser = ModelDirectory.Open(_model).OpenDenoiser();
        var sampled = new DiffusionSampler(denoiser, _schedule).Sample([7], new SamplerOptions(SamplerKind.Ddim, Steps, RecordTrajectory: true));
        Assert.That(sampled.Timesteps, Is.EqualTo(new long[] { 999, 665, 332 }));
        using var scorer = OpenScorer();
        Assert.That(scorer.Steps, Is.EqualTo(sampled.Timesteps));
        Assert.That(scorer.Rows, Is.EqualTo(Rows));
        foreach (var t in sampled.Timesteps)
        {
            using var store = FeatureStore.Open(Path.Combine(_store, JourneyTrakMethod.StepFolder(t, 1000)));
            Assert.That(store.Meta.Timesteps, Is.EqualTo(new[] { t }), $"step store of t = {t}");
            Assert.That((store.Rows, store.Dim, store.Meta.Method), Is.EqualTo(((long)Rows, Dim, "journey-trak")));
        }
        Assert.That(JourneyTrakMethod.StepFolder(999, 1000), Is.EqualTo("t0999"));
    }

    [Test]
    public void StepScores_TrajectoryThatSkipsAStep_Throws()
    {
        using var denoiser = ModelDirectory.Open(_model).OpenDenoiser();
        var sampled = new DiffusionSampler(denoiser, _schedule).Sample([7], new SamplerOptions(SamplerKind.Ddim, 2, RecordTrajectory: true));
        using var scorer = OpenScorer();
        var query = new AttributionQuery("two steps", sampled.Image(0).ToArray(), sampled.Trajectories![0]);
        Assert.That(() => scorer.StepScores(query), Throws.TypeOf<UserInputException>().With.Message.Contains("665").And.Message.Contains("query 'two steps'"));
    }

    /// <summary>A trajectory whose states are a training image noised with <paramref name="noise"/> at the store's steps.</summary>
    private static Trajectory PlantedTrajectory(ReadOnlySpan<float> x0, float[] noise, IReadOnlyList<long> steps, NoiseSchedule schedule)
    {
        int d = x0.Length;
        var states = new float[(steps.Count + 1) * d];
        for (int j = 0; j < steps.Count; j++)
        {
            double a = Math.Sqrt(schedule.AlphaBars[steps[j]]), s = Math.Sqrt(1 - schedule.AlphaBars[steps[j]]);
            for (int i = 0; i < d; i++)
            {
                states[j * d + i] = (float)(a * x0[i] + s * noise[i]);
            }
        }
        x0.CopyTo(states.AsSpan(steps.Count * d, d));
        return new Trajectory(SamplerKind.Ddim, 0, 1, 16, 16, steps.ToArray(), states, 0, true, 1000);
    }

    [TestCase(5)]
    [TestCase(17)]
    [TestCase(33)]
    public void StepScores_TrajectoryOfATrainingImage_RanksItFirstAtEveryStep(int row)
    {
        using var scorer = OpenScorer();
        // The known ε is the one the step stores drew (plan seed 5, draw 0 at every step): x̂_t is then exactly the state
        // the training row was featurized at, which the untrained network needs (with fresh noise see the fm16 test).
        var noise = new float[_data.ImageLength];
        new FeaturizationPlan([scorer.Steps[0]], 1, 5, MeasurementKind.Loss).Noise(0, 0, noise);
        var trajectory = PlantedTrajectory(_data.Image(row), noise, scorer.Steps, _schedule);
        var (_, target) = JourneyTrakMethod.StepInput(trajectory, scorer.Steps[^1], _schedule);
        Assert.That(target, Is.EqualTo(noise).Within(1e-4), "ε* recovers the noise that made x̂_t from x̂₀");

        var scores = scorer.StepScores(new AttributionQuery($"row {row}", _data.Image(row).ToArray(), trajectory));
        Assert.That(scores, Has.Length.EqualTo(Steps * Rows));
        for (int j = Steps - 1; j >= 0; j--)
        {
            var top = TopKSelection.Select(scores.AsSpan(j * Rows, Rows), 5);
            Assert.That(top.Indices[0], Is.EqualTo(row), $"step t = {scorer.Steps[j]}: top-5 {string.Join(",", top.Indices)}");
        }
    }

    /// <summary>
    /// The shipped model, ten steps, noise the stores never drew: the training image a trajectory was built from should
    /// rank first at the lowest-noise step (t = 99) for most of the 40 rows (26 of 40 when written; chance is 1 in 40).
    /// </summary>
    [Test]
    [Category("Slow")]
    public void StepScores_TrainedModelFreshNoise_RanksMostSourceImagesFirstAtTheLowestNoiseStep()
    {
        var model = Path.Combine(RepositoryFiles.Root, "models", "fm16");
        var store = Path.Combine(_dir, "fm16-journey");
        _method.Build(new MethodBuildRequest
        {
            ModelDirectory = model,
            Data = _data,
            Source = new StoreSource(model, "embedded", "0:40", 16),
            OutDirectory = store,
            Settings = new MethodSettings { JourneySteps = 10, Dim = Dim, NoiseSeed = 5, ProjectionSeed = ProjectionSeed, Damping = ToyDamping },
        });
        using var scorer = (IStepwiseScorer)AttributionMethods.Open(store, model);
        var schedule = ModelDirectory.Open(model).CreateSchedule();
        int firsts = 0;
        for (int row = 0; row < Rows; row++)
        {
            var noise = new float[_data.ImageLength];
            new CounterRng(99, row).FillNormal(noise);
            var query = new AttributionQuery($"row {row}", _data.Image(row).ToArray(), PlantedTrajectory(_data.Image(row), noise, scorer.Steps, schedule));
            var scores = scorer.StepScores(query).AsSpan((scorer.Steps.Count - 1) * Rows, Rows);
            firsts += TopKSelection.Select(scores, 1).Indices[0] == row ? 1 : 0;
        }
        TestContext.Out.WriteLine($"source image first at t = {scorer.Steps[^1]} for {firsts} of {Rows} rows");
        Assert.That(firsts, Is.GreaterThanOrEqualTo(20));
    }

    [Test]
    public void StepScores_SampledTrajectory_EqualsTrakScoringByHandWithEachStepsStore()
    {
        using var denoiser = ModelDirectory.Open(_model).OpenDenoiser();
        var sampled = new DiffusionSampler(denoiser, _schedule).Sample([7], new SamplerOptions(SamplerKind.Ddim, 2 * Steps, RecordTrajectory: true));
        var trajectory = sampled.Trajectories![0];
        var query = new AttributionQuery("seed 7", sampled.Image(0).ToArray(), trajectory);
        using var scorer = OpenScorer();
        var actual = scorer.StepScores(query);
        int d = _data.ImageLength;
        for (int j = 0; j < Steps; j++)
        {
            long t = scorer.Steps[j];
            // x̂_t is state 2j of the six-step trajectory; ε* = (x̂_t − √ᾱ x̂₀)/√(1−ᾱ) with x̂₀ its final image.
            Assert.That(trajectory.Timesteps[2 * j], Is.EqualTo(t));
            var xt = trajectory.State(2 * j).ToArray();
            var final = trajectory.Final;
            double ab = _schedule.AlphaBars[t];
            var target = new float[d];
            for (int i = 0; i < d; i++)
            {
                target[i] = (float)((xt[i] - Math.Sqrt(ab) * final[i]) / Math.Sqrt(1 - ab));
            }
            var dir = Path.Combine(_store, JourneyTrakMethod.StepFolder(t, 1000));
            using var store = FeatureStore.Open(dir);
            using var model = new GradientModel(_model, TrakScorer.PlanOf(store.Meta), TrakScorer.ProjectionOf(store.Meta));
            var source = model.Extractor.Source;
            var gradient = new float[source.Dimension];
            source.Compute(source.Noisy(xt, target, t, 1), gradient);
            var phi = new float[Dim];
            // The engine's projection: P of the dense projector, summed through its sign tables (their agreement is
            // SignTableProjectorTests'); here x amplifies rounding ~1e3×, so the hand computation takes the same path.
            new SignTableProjector(new DenseProjector(source.Dimension, Dim, ProjectionKind.Rademacher, (ulong)ProjectionSeed)).Project(gradient, phi);
            var x = new float[Dim];
            Preconditioner.Load(Path.Combine(dir, StoreFiles.Preconditioner), Dim, Rows, PreconditionerBuilder.StoreFingerprint(dir)).Solve(phi, x);
            var expected = new double[Rows];
            var featureRow = new float[Dim];
            for (int r = 0; r < Rows; r++)
            {
                store.ReadRow(r, featureRow);
                expected[r] = Enumerable.Range(0, Dim).Sum(e => (double)featureRow[e] * x[e]);
            }
            // Tolerance: with k > N and λ = 1e-3 × mean diagonal, x is up to ~1/1e-3 larger outside Φ's row space than the
            // part that scores, and the store's float32 scan cancels those terms (1.4e-4 relative seen); a wrong step,
            // state or target would be off by order one.
            double scale = expected.Max(Math.Abs);
            Assert.That(scale, Is.GreaterThan(0));
            var scanned = new float[Rows];
            store.Scores(x, 1, scanned);
            Assert.That(actual.AsSpan(j * Rows, Rows).ToArray(), Is.EqualTo(scanned).Within(1e-6 * scale), $"step t = {t}: the same float32 scan");
            Assert.That(actual.AsSpan(j * Rows, Rows).ToArray(), Is.EqualTo(expected).Within(1e-3 * scale), $"step t = {t}");
            TestContext.Out.WriteLine($"t = {t}: max |difference| {Enumerable.Range(0, Rows).Max(r => Math.Abs(actual[j * Rows + r] - expected[r])) / scale:G2} of the largest score");
        }

        var mean = scorer.Scores([query]);
        for (int r = 0; r < Rows; r++)
        {
            Assert.That(mean[r], Is.EqualTo(Enumerable.Range(0, Steps).Average(j => actual[j * Rows + r])).Within(1e-5), $"row {r}: the overall score is the mean over steps");
        }
    }

    /// <summary>Several plain images in one call: each query's row of each step comes from that step's own store.</summary>
    [Test]
    public void StepScores_PlainImagesInOneBatch_EachStepScoredByItsOwnStore()
    {
        using var scorer = OpenScorer();
        int[] rows = [9, 21];
        var actual = scorer.StepScores(rows.Select(r => new AttributionQuery($"row {r}", _data.Image(r).ToArray())).ToList());
        for (int j = 0; j < Steps; j++)
        {
            using var trak = TrakScorer.Open(Path.Combine(_store, JourneyTrakMethod.StepFolder(scorer.Steps[j], 1000)), _model);
            for (int q = 0; q < rows.Length; q++)
            {
                var expected = trak.Scores(_data.Image(rows[q]).ToArray(), 1);
                Assert.That(actual.AsSpan(((q * Steps) + j) * Rows, Rows).ToArray(), Is.EqualTo(expected).Within(1e-5 * expected.Max(Math.Abs)),
                    $"query {q}, step t = {scorer.Steps[j]}: the image noised with the step store's plan");
            }
        }
    }

    [Test]
    public void Build_CancelledThenResumed_ByteIdenticalToUninterrupted()
    {
        var data = SubsetSpec.Parse("0:12").Apply(_data);
        var whole = Path.Combine(_dir, "whole");
        var resumed = Path.Combine(_dir, "resumed");
        _method.Build(Request(data, "0:12", whole, 128, batchSize: 4));
        using var cancel = new CancellationTokenSource();
        var progress = new SyncProgress<MethodProgress>(p =>
        {
            if (p.Stage == "featurize" && p.Done == 12 + 8)
            {
                cancel.Cancel(); // two batches into the second step
            }
        });
        Assert.Throws<OperationCanceledException>(() => _method.Build(Request(data, "0:12", resumed, 128, batchSize: 4, progress), cancel.Token));
        Assert.That(File.Exists(Path.Combine(resumed, StoreFiles.Method)), Is.False, "method.json only when complete");
        Assert.That(File.Exists(Path.Combine(resumed, "t0999", StoreFiles.Preconditioner)), Is.True, "the first step was finished");
        Assert.That(File.Exists(Path.Combine(resumed, "t0665", StoreFiles.Preconditioner)), Is.False);
        var reports = new List<MethodProgress>();
        _method.Build(Request(data, "0:12", resumed, 128, batchSize: 4, new SyncProgress<MethodProgress>(reports.Add)));
        Assert.That(reports.Where(p => p.Stage == "featurize").Select(p => p.Done), Has.Member(12L + 8).And.None.InRange(13L, 19L), "the rerun continues where it stopped");

        var files = Directory.GetFiles(whole, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(whole, f)).Order(StringComparer.Ordinal).ToList();
        Assert.That(files, Has.Member(Path.Combine("t0332", StoreFiles.Preconditioner)));
        Assert.That(Directory.GetFiles(resumed, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(resumed, f)).Order(StringComparer.Ordinal), Is.EqualTo(files));
        // history.json records when each version was made: it is the one file that differs between two runs.
        foreach (var f in files.Where(f => Path.GetFileName(f) != StoreFiles.History))
        {
            Assert.That(File.ReadAllBytes(Path.Combine(resumed, f)), Is.EqualTo(File.ReadAllBytes(Path.Combine(whole, f))), f);
        }

        Assert.That(() => _method.Build(Request(data, "0:12", resumed, 128, batchSize: 4, steps: 2)),
            Throws.TypeOf<UserInputException>().With.Message.Contains("other settings"), "a complete store is not rebuilt with other settings");
    }
}
