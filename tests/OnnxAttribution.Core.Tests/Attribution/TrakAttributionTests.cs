using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests.Attribution;

/// <summary>
/// The scoring engine end to end on a small U-Net and 40 embedded training images: quality floors that can fail.
/// </summary>
[TestFixture]
public sealed class TrakAttributionTests
{
    private const int Rows = 40;
    private string _dir = "";
    private string _model = "";
    private ImageDataset _data = null!;

    [OneTimeSetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("oa-trak-").FullName;
        _model = Path.Combine(_dir, "model");
        TinyModelFixture.CopyTo(_model);
        _data = new DatasetLocator().Load("embedded", $"0:{Rows}", null);
    }

    [OneTimeTearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string Store(string name, int dim, StoreDType dtype, MeasurementKind measurement = MeasurementKind.Loss, ProjectorKind projector = ProjectorKind.Dense)
    {
        var dir = Path.Combine(_dir, name);
        if (!Directory.Exists(dir))
        {
            using var store = TrakEngine.Featurize(new FeaturizeOptions
            {
                ModelDirectory = _model,
                Data = _data,
                Plan = new FeaturizationPlan([100, 400, 700], 1, 5, measurement),
                Projection = new ProjectionSettings(projector, ProjectionKind.Rademacher, dim, 11),
                DType = dtype,
                OutDirectory = dir,
                BatchSize = 8,
            });
            PreconditionerBuilder.Finalize(dir, 1e-3);
        }
        return dir;
    }

    [Test]
    public void Featurize_CancelledThenResumed_ByteIdenticalToUninterrupted()
    {
        FeaturizeOptions Options(string name) => new()
        {
            ModelDirectory = _model,
            Data = _data,
            Plan = new FeaturizationPlan([300], 1, 9, MeasurementKind.Square),
            Projection = new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Gaussian, 128, 4),
            DType = StoreDType.Float16,
            OutDirectory = Path.Combine(_dir, name),
            BatchSize = 6,
        };
        using (TrakEngine.Featurize(Options("whole")))
        {
        }
        using var cancel = new CancellationTokenSource();
        int reports = 0;
        var progress = new SyncProgress<(long Done, long Total)>(_ =>
        {
            if (++reports == 3)
            {
                cancel.Cancel(); // after two batches are on disk
            }
        });
        Assert.Throws<OperationCanceledException>(() => TrakEngine.Featurize(Options("resumed"), progress, cancel.Token).Dispose());
        using (var partial = FeatureStoreWriter.OpenOrCreate(Path.Combine(_dir, "resumed"), TrakEngine.Meta(Options("resumed"), StoreMeta.FingerprintFile(Path.Combine(_model, "vjp.onnx")), 128)))
        {
            Assert.That(partial.DoneCount, Is.EqualTo(12));
        }
        using (TrakEngine.Featurize(Options("resumed")))
        {
        }
        Assert.That(File.ReadAllBytes(Path.Combine(_dir, "resumed", StoreFiles.Features)), Is.EqualTo(File.ReadAllBytes(Path.Combine(_dir, "whole", StoreFiles.Features))));
        Assert.That(File.ReadAllBytes(Path.Combine(_dir, "resumed", StoreFiles.Done)), Is.EqualTo(File.ReadAllBytes(Path.Combine(_dir, "whole", StoreFiles.Done))));
    }

    private sealed class SyncProgress<T>(Action<T> handler) : IProgress<T>
    {
        public void Report(T value) => handler(value);
    }

    private float[] Images(params int[] rows) => rows.SelectMany(r => _data.Image(r).ToArray()).ToArray();

    [TestCase(MeasurementKind.Loss)]
    [TestCase(MeasurementKind.Square)]
    [TestCase(MeasurementKind.Mean)]
    public void Gradients_CotangentComputedInTheGraph_EqualForwardThenExplicitCotangent(MeasurementKind measurement)
    {
        // Featurizing runs one graph that computes the measurement's cotangent from its own ε̂; the shipped vjp.onnx takes the
        // cotangent from a forward pass run first. Same gradients, and the same losses.
        var plan = new FeaturizationPlan([100, 700], 1, 5, measurement);
        using var model = new GradientModel(_model, plan, new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, 64, 11));
        var directory = Runtime.ModelDirectory.Open(_model);
        using var forward = directory.OpenDenoiser();
        using var vjp = Runtime.Gradients.VjpSession.Open(directory.RequireVjp());
        Assert.That(vjp.CotangentFromOutput, Is.False);
        var explicitSource = new GradientSource(forward, vjp, directory.CreateSchedule(), plan);
        var inGraph = model.Extractor.Source;
        Assert.That(inGraph.CotangentFromOutput, Is.True, "the featurize graph computes its own cotangent");
        int count = 3;
        var images = Images(4, 18, 27);
        long p = inGraph.Dimension;
        Assert.That(explicitSource.Dimension, Is.EqualTo(p));
        var a = new float[count * p];
        var b = new float[count * p];
        var lossA = new float[count];
        var lossB = new float[count];
        inGraph.Compute(images, count, a, lossA);
        explicitSource.Compute(images, count, b, lossB);
        float scale = b.Max(MathF.Abs);
        Assert.That(scale, Is.GreaterThan(0f));
        Assert.That(a.Zip(b, (x, y) => MathF.Abs(x - y)).Max() / scale, Is.LessThan(1e-4f));
        Assert.That(lossA, Is.EqualTo(lossB).Within(1e-5f));
    }

    [Test]
    public void FactoredFeatures_ProjectedInTheGraph_EqualTheProjectedFactors()
    {
        // Featurizing applies P_in and P_out inside the gradient graph; K-FAC's queries project the graph's raw factors with
        // the FactoredProjector. Both must give the same features, or stores and queries would not be comparable.
        var plan = new FeaturizationPlan([100, 700], 1, 5, MeasurementKind.Loss);
        var projection = new ProjectionSettings(ProjectorKind.Factored, ProjectionKind.Rademacher, 512, 11);
        using var inGraph = new GradientModel(_model, plan, projection);
        using var factors = new GradientModel(_model, plan, projection, kroneckerFactors: true);
        Assert.That(inGraph.Extractor.Source.ProjectedFactorsOutput, Is.Not.Null);
        Assert.That(factors.Extractor.Source.ProjectedFactorsOutput, Is.Null);
        Assert.That(inGraph.Extractor.Dim, Is.EqualTo(factors.Extractor.Dim));
        int k = inGraph.Extractor.Dim, count = 4;
        var images = Images(2, 9, 17, 31);
        var a = new float[count * k];
        var b = new float[count * k];
        inGraph.Extractor.Extract(images, count, a);
        factors.Extractor.Extract(images, count, b);
        float scale = b.Max(MathF.Abs);
        Assert.That(scale, Is.GreaterThan(0f));
        float worst = a.Zip(b, (x, y) => MathF.Abs(x - y)).Max();
        Assert.That(worst / scale, Is.LessThan(1e-4f), $"largest difference {worst} against largest feature {scale}");

        // A projector other than the one the graph holds is refused, whichever graph: same width, another seed.
        var other = FeatureExtractor.CreateFactored(inGraph.Extractor.Factored!.Layers, projection with { Seed = 12 });
        Assert.Throws<Primitives.GraphContractException>(() => _ = new FeatureExtractor(inGraph.Extractor.Source, projection, other));
        var fewer = FeatureExtractor.CreateFactored(inGraph.Extractor.Factored!.Layers.Skip(1).ToList(), projection);
        Assert.Throws<Primitives.GraphContractException>(() => _ = new FeatureExtractor(factors.Extractor.Source, projection, fewer));
    }

    [TestCase(MeasurementKind.Loss, ProjectorKind.Dense)]
    [TestCase(MeasurementKind.Square, ProjectorKind.Dense)]
    [TestCase(MeasurementKind.Loss, ProjectorKind.Factored)]
    public void Attribute_PlantedDuplicate_RanksItsTrainingImageFirst(MeasurementKind measurement, ProjectorKind projector)
    {
        var store = Store($"dup-{measurement}-{projector}", 512, StoreDType.Float32, measurement, projector);
        using var scorer = TrakScorer.Open(store, _model);
        int[] planted = [5, 17, 33];
        var top = scorer.Attribute(Images(planted), planted.Length, 5);
        for (int q = 0; q < planted.Length; q++)
        {
            Assert.That(top[q].Indices[0], Is.EqualTo(planted[q]), $"query {q}: top-5 {string.Join(",", top[q].Indices)}");
        }
    }

    [Test]
    public void Attribute_Float16Store_SameTopTenAsFloat32()
    {
        using var f32 = TrakScorer.Open(Store("f32", 512, StoreDType.Float32), _model);
        using var f16 = TrakScorer.Open(Store("f16", 512, StoreDType.Float16), _model);
        // Queries: training images with a little noise (not exact duplicates) and a blend of two.
        var rng = new Random(2);
        var queries = Images(3, 21, 8).Select(v => v + 0.05f * (float)(rng.NextDouble() - 0.5)).ToArray();
        int d = _data.ImageLength;
        var blend = Images(10).Zip(Images(30), (a, b) => 0.5f * (a + b)).ToArray();
        queries = [.. queries, .. blend];
        int count = queries.Length / d;
        var a = f32.Attribute(queries, count, 10);
        var b = f16.Attribute(queries, count, 10);
        var all = f32.Scores(queries, count);
        int exact = 0;
        for (int q = 0; q < count; q++)
        {
            // The same ten, except for swaps across the 10th place between rows whose float32 scores differ by less
            // than float16's resolution (2⁻¹¹ relative to the largest score).
            var scores = all.AsSpan(q * Rows, Rows);
            float tenth = a[q].Scores[9];
            float resolution = 2f * a[q].Scores.Max(MathF.Abs) / 2048f;
            var differing = a[q].Indices.Except(b[q].Indices).Concat(b[q].Indices.Except(a[q].Indices)).ToList();
            exact += differing.Count == 0 ? 1 : 0;
            foreach (var row in differing)
            {
                Assert.That(scores[(int)row], Is.EqualTo(tenth).Within(resolution),
                    $"query {q}: row {row} is in one top-10 only and is not a near-tie at the 10th place (f32 {string.Join(",", a[q].Indices)}; f16 {string.Join(",", b[q].Indices)})");
            }
            Assert.That(b[q].Indices[0], Is.EqualTo(a[q].Indices[0]), $"query {q}: top-1");
        }
        TestContext.Out.WriteLine($"identical top-10 for {exact} of {count} queries");
    }

    [Test]
    public void Scores_DenseProjectionK4096_AgreesWithExactGradientSpace()
    {
        double rho = ProjectedVersusExact(4096);
        TestContext.Out.WriteLine($"Spearman(projected k=4096, exact) = {rho:F4}");
        Assert.That(rho, Is.GreaterThanOrEqualTo(0.9));
    }

    /// <summary>
    /// Exact TRAK scores without projection — which are the influence function ∇L(q)ᵀ(GᵀG + λI)⁻¹∇L(xᵢ) with the
    /// empirical Gauss–Newton curvature of the same gradients, the limit where TRAK and influence functions agree — by
    /// the push-through identity G(GᵀG + λI)⁻¹ = (GGᵀ + λI)⁻¹G on the N×p gradient matrix, with the same absolute λ as
    /// the projected store; mean Spearman over queries.
    /// </summary>
    private double ProjectedVersusExact(int dim)
    {
        var storeDir = Store($"exact-{dim}", dim, StoreDType.Float32);
        using var scorer = TrakScorer.Open(storeDir, _model);
        var source = scorer.Extractor.Source;
        long p = source.Dimension;
        var g = new float[Rows * p];
        for (int start = 0; start < Rows; start += 8)
        {
            source.Compute(_data.Pixels.Slice(start * _data.ImageLength, 8 * _data.ImageLength), 8, g.AsSpan((int)(start * p), (int)(8 * p)));
        }
        var rng = new Random(4);
        var queries = Images(2, 12, 25, 38).Select(v => Math.Clamp(v + 0.3f * (float)(rng.NextDouble() - 0.5), -1f, 1f)).ToArray();
        int count = 4;
        var gq = new float[count * p];
        source.Compute(queries, count, gq);
        var projected = scorer.Scores(queries, count);
        double lambda = Preconditioner.Load(Path.Combine(storeDir, StoreFiles.Preconditioner), dim, scorer.Store.Rows, PreconditionerBuilder.StoreFingerprint(storeDir)).Damping;

        // K = GGᵀ + λI (N×N) and b = G g_q, in float64.
        var kernel = new double[Rows, Rows];
        for (int i = 0; i < Rows; i++)
        {
            for (int j = 0; j <= i; j++)
            {
                double s = 0;
                for (long e = 0; e < p; e++)
                {
                    s += (double)g[i * p + e] * g[j * p + e];
                }
                kernel[i, j] = kernel[j, i] = s + (i == j ? lambda : 0);
            }
        }
        double total = 0;
        for (int q = 0; q < count; q++)
        {
            var b = new double[Rows];
            for (int i = 0; i < Rows; i++)
            {
                double s = 0;
                for (long e = 0; e < p; e++)
                {
                    s += (double)g[i * p + e] * gq[q * p + e];
                }
                b[i] = s;
            }
            var exact = ReferenceSolver.Solve(kernel, b);
            var proj = projected.AsSpan(q * Rows, Rows).ToArray().Select(x => (double)x).ToArray();
            total += RankCorrelation.Spearman(exact, proj);
        }
        return total / count;
    }

    [Test]
    public void Redamp_ScoresAsFinalizedWithThatDamping_AndRecordsIt()
    {
        var dir = Store("redamp", 64, StoreDType.Float32);
        Core.Attribution.Methods.MethodManifest.Of("trak", new { measurement = "loss", damping = 1e-3 }).Save(dir);
        var images = Images(4, 18);
        float[] Scores()
        {
            using var scorer = TrakScorer.Open(dir, _model);
            return scorer.Scores(images, 2);
        }
        var before = Scores();
        var grams = new GramCache();
        ((Core.Attribution.Methods.IDampedMethod)Core.Attribution.Methods.AttributionMethods.Find("trak")).Redamp(dir, 1e-1, grams);
        var redamped = Scores();
        Assert.That(Core.Attribution.Methods.MethodManifest.TryLoad(dir)!.Settings["damping"]!.GetValue<double>(), Is.EqualTo(1e-1));
        PreconditionerBuilder.Finalize(dir, 1e-1);
        Assert.That(redamped, Is.EqualTo(Scores()), "the same kernel inverse as a finalize with λ = 1e-1");
        Assert.That(redamped, Is.Not.EqualTo(before));
        var first = grams.For(dir);
        Assert.That(grams.For(dir), Is.SameAs(first), "the Gram matrix is accumulated once per store");
    }
}
