using OnnxAttribution.Core.Attribution.Influence;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests.Attribution;

/// <summary>
/// K-FAC / EK-FAC influence (kfac, ekfac) end to end on a small untrained U-Net and 30 embedded training images: planted
/// duplicates, agreement with unprojected influence, EK-FAC = K-FAC where that is exact, and resumed builds.
/// </summary>
[TestFixture]
public sealed class KfacAttributionTests
{
    private const int Rows = 30;
    private const double Damping = 1e-3;
    private string _dir = "";
    private string _model = "";
    private ImageDataset _data = null!;

    [OneTimeSetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("oa-kfac-").FullName;
        _model = Path.Combine(_dir, "model");
        TinyModelFixture.CopyTo(_model);
        _data = SubsetSpec.Parse($"0:{Rows}").Apply(new DatasetLocator().Load("embedded"));
    }

    [OneTimeTearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private static MethodSettings Settings(int dim) => new() { Timesteps = 3, Dim = dim, Damping = Damping, BatchSize = 8, NoiseSeed = 5, ProjectionSeed = 11, Seed = 2 };

    /// <summary>Builds (once) the store of a method over the 30 rows.</summary>
    private string Store(string method, int dim)
    {
        var dir = Path.Combine(_dir, $"{method}-{dim}");
        if (!File.Exists(Path.Combine(dir, StoreFiles.Method)))
        {
            AttributionMethods.Find(method).Build(new MethodBuildRequest
            {
                ModelDirectory = _model,
                Data = _data,
                Source = new StoreSource(_model, "embedded", $"0:{Rows}", _data.Height),
                OutDirectory = dir,
                Settings = Settings(dim),
            });
        }
        return dir;
    }

    private float[] Images(params int[] rows) => rows.SelectMany(r => _data.Image(r).ToArray()).ToArray();

    private static AttributionQuery[] Queries(float[] images, int length) =>
        Enumerable.Range(0, images.Length / length).Select(q => new AttributionQuery($"q{q}", images.AsSpan(q * length, length).ToArray())).ToArray();

    [TestCase("kfac")]
    [TestCase("ekfac")]
    public void Attribute_PlantedDuplicate_RanksItsTrainingImageFirst(string method)
    {
        using var scorer = AttributionMethods.Open(Store(method, 4096), _model);
        int[] planted = [5, 17, 26];
        var top = scorer.TopK(Queries(Images(planted), _data.ImageLength), 5);
        for (int q = 0; q < planted.Length; q++)
        {
            Assert.That(top[q].Indices[0], Is.EqualTo(planted[q]), $"query {q}: top-5 {string.Join(",", top[q].Indices)}");
            Assert.That(top[q].Scores[0], Is.GreaterThan(0), "self-influence is positive: training on the image lowers its own loss");
        }
    }

    /// <summary>
    /// The factored projection is the only approximation between the store's scores and ⟨H⁻¹∇m(q), ∇L(xᵢ)⟩ over the
    /// factored layers: here that inner product is computed in full dimension from unprojected per-layer gradients with
    /// the same factors and damping, and the two rankings must agree.
    /// </summary>
    [TestCase("kfac")]
    [TestCase("ekfac")]
    public void Scores_LargeFactoredK_AgreeWithUnprojectedInfluence(string method)
    {
        var dir = Store(method, 131072);
        using var scorer = AttributionMethods.Open(dir, _model);
        var rng = new Random(4);
        var queries = Images(2, 12, 21, 28).Select(v => Math.Clamp(v + 0.3f * (float)(rng.NextDouble() - 0.5), -1f, 1f)).ToArray();
        int count = 4, d = _data.ImageLength;
        var projected = scorer.Scores(Queries(queries, d));

        using var store = FeatureStore.Open(dir);
        using var model = new GradientModel(_model, TrakScorer.PlanOf(store.Meta), TrakScorer.ProjectionOf(store.Meta), kroneckerFactors: true);
        var source = model.Extractor.Source;
        var curvature = KroneckerCurvature.Load(Path.Combine(dir, StoreFiles.Kfac));
        var train = LayerGradients.Compute(source, _data.Pixels, Rows);
        var query = LayerGradients.Compute(source, queries, count);
        double total = 0;
        for (int q = 0; q < count; q++)
        {
            var exact = new double[Rows];
            for (int l = 0; l < curvature.Layers.Count; l++)
            {
                var layer = curvature.Layers[l];
                int size = layer.Shape.InDim * layer.Shape.OutDim;
                var preconditioned = new double[size];
                layer.InverseProduct(query[l].AsSpan(q * size, size).ToArray().Select(v => (double)v).ToArray(), Damping, preconditioned);
                for (int i = 0; i < Rows; i++)
                {
                    var g = train[l].AsSpan(i * size, size);
                    for (int e = 0; e < size; e++)
                    {
                        exact[i] += preconditioned[e] * g[e];
                    }
                }
            }
            double rho = RankCorrelation.Spearman(exact, projected.AsSpan(q * Rows, Rows).ToArray().Select(v => (double)v).ToArray());
            TestContext.Out.WriteLine($"{method} query {q}: Spearman(projected k = {store.Dim}, unprojected) = {rho:F4}");
            total += rho;
        }
        Assert.That(total / count, Is.GreaterThanOrEqualTo(0.9));
    }

    [Test]
    public void Estimate_OneExampleOnePair_EkfacEqualsKfacOnLinearLayersOnly()
    {
        // One sample: A = (1/S) Σₛ aₛaₛᵀ, B = Σₛ gₛgₛᵀ; at S = 1 (the Gemm layers) B ⊗ A = vec Ĝ vec Ĝᵀ and the refit eigenvalues are
        // the Kronecker products exactly; conv layers (S > 1) keep cross-position terms that K-FAC-expand drops.
        var dir = Path.Combine(_dir, "one-sample");
        CurvatureOptions Options(CurvatureKind kind) => new()
        {
            ModelDirectory = _model,
            Data = SubsetSpec.Parse("7:8").Apply(_data),
            Plan = new FeaturizationPlan([400], 1, 5, MeasurementKind.Loss),
            Projection = new ProjectionSettings(ProjectorKind.Factored, ProjectionKind.Rademacher, 1024, 11),
            FisherSeed = 1,
            Kind = kind,
            OutDirectory = dir,
        };
        var kfac = CurvatureEstimator.Estimate(Options(CurvatureKind.Kfac));
        var ekfac = CurvatureEstimator.Estimate(Options(CurvatureKind.Ekfac));
        Assert.That(ekfac.Kind, Is.EqualTo(CurvatureKind.Ekfac));
        Assert.That(kfac.Layers.Count(l => l.Shape.Positions == 1), Is.GreaterThan(0));
        int convDiffering = 0;
        for (int l = 0; l < kfac.Layers.Count; l++)
        {
            var expected = kfac.Layers[l].KroneckerEigenvalues();
            var actual = ekfac.Layers[l].Corrected!;
            double scale = expected.Max();
            double worst = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
            if (kfac.Layers[l].Shape.Positions == 1)
            {
                Assert.That(scale, Is.GreaterThan(0), kfac.Layers[l].Shape.Name);
                Assert.That(worst, Is.LessThanOrEqualTo(1e-5 * scale), $"{kfac.Layers[l].Shape.Name}: refit vs Kronecker eigenvalues");
            }
            else if (worst > 1e-3 * scale)
            {
                convDiffering++;
            }
            // Either way the refit keeps the mass of the one sample: Σ Λ = ‖Ĝ‖²_F.
            Assert.That(actual.Sum(), Is.GreaterThan(0), kfac.Layers[l].Shape.Name);
        }
        Assert.That(convDiffering, Is.GreaterThan(0), "conv layers have cross-position terms, so their refit differs");
    }

    [Test]
    public void Estimate_CancelledInEachPassThenResumed_SameFileAsUninterrupted()
    {
        CurvatureOptions Options(string name) => new()
        {
            ModelDirectory = _model,
            Data = SubsetSpec.Parse("0:20").Apply(_data),
            Plan = new FeaturizationPlan([100, 600], 1, 5, MeasurementKind.Loss),
            Projection = new ProjectionSettings(ProjectorKind.Factored, ProjectionKind.Rademacher, 1024, 11),
            FisherSeed = 3,
            Kind = CurvatureKind.Ekfac,
            OutDirectory = Path.Combine(_dir, name),
            BatchSize = 4,
            CheckpointInterval = TimeSpan.Zero,
        };
        CurvatureEstimator.Estimate(Options("whole"));
        foreach (var stage in new[] { "curvature", "eigenvalues" })
        {
            using var cancel = new CancellationTokenSource();
            var progress = new SyncProgress<MethodProgress>(p =>
            {
                if (p.Stage == stage && p.Done == 8)
                {
                    cancel.Cancel(); // two batches summed and saved
                }
            });
            Assert.Throws<OperationCanceledException>(() => CurvatureEstimator.Estimate(Options("resumed"), progress, cancel.Token));
            Assert.That(File.Exists(Path.Combine(_dir, "resumed", StoreFiles.KfacPartial)), stage);
        }
        int resumedFrom = -1;
        CurvatureEstimator.Estimate(Options("resumed"), new SyncProgress<MethodProgress>(p => resumedFrom = resumedFrom < 0 ? (int)p.Done : resumedFrom));
        Assert.That(resumedFrom, Is.EqualTo(8), "the last run continues the eigenvalue pass after its two saved batches");
        Assert.That(File.ReadAllBytes(Path.Combine(_dir, "resumed", StoreFiles.Kfac)), Is.EqualTo(File.ReadAllBytes(Path.Combine(_dir, "whole", StoreFiles.Kfac))));
        Assert.That(File.Exists(Path.Combine(_dir, "resumed", StoreFiles.KfacPartial)), Is.False);
    }

    [Test]
    public void Build_ZeroDamping_RefusedNamingTheOption()
    {
        var e = Assert.Throws<SettingException>(() => AttributionMethods.Find("kfac").Build(new MethodBuildRequest
        {
            ModelDirectory = _model,
            Data = _data,
            Source = new StoreSource(_model, "embedded", $"0:{Rows}", _data.Height),
            OutDirectory = Path.Combine(_dir, "no-damping"),
            Settings = Settings(1024) with { Damping = 0 },
        }));
        Assert.That((e!.Setting, e.Value, e.Suggestion), Is.EqualTo(("Damping", (object)0.0, (object)10.0)));
        Assert.That(e.Message, Does.StartWith("Damping = 0: kfac needs a positive damping").And.EndWith("; use Damping = 10"));
        Assert.That(e.Message, Does.Not.Contain("--"), "the library names its setting, not a command-line flag");
    }
}
