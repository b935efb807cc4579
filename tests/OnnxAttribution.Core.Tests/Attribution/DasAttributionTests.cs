using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests.Attribution;

/// <summary>
/// DAS and the gradient-cosine baseline on a small untrained U-Net and 40 embedded training images: planted duplicates, and
/// DAS's features and residuals against the same quantities computed here by hand.
/// </summary>
[TestFixture]
public sealed class DasAttributionTests
{
    private const int Rows = 40;
    private const int Dim = 512;
    private static readonly int[] Planted = [5, 17, 33];
    private string _dir = "";
    private string _model = "";
    private ImageDataset _data = null!;

    [OneTimeSetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("oa-das-").FullName;
        _model = Path.Combine(_dir, "model");
        TinyModelFixture.CopyTo(_model);
        _data = new DatasetLocator().Load("embedded", $"0:{Rows}", null);
    }

    [OneTimeTearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private static MethodSettings Settings => new() { Timesteps = 3, NoiseSeed = 5, Dim = Dim, ProjectionSeed = 11, BatchSize = 8 };

    private MethodBuildRequest Request(string name, ImageDataset? data = null, IProgress<MethodProgress>? progress = null) => new()
    {
        ModelDirectory = _model,
        Data = data ?? _data,
        Source = new StoreSource(_model, "embedded", $"0:{(data ?? _data).Count}", 16),
        OutDirectory = Path.Combine(_dir, name),
        Settings = Settings,
        Progress = progress,
    };

    /// <summary>The store of <paramref name="method"/> over the 40 rows, built once.</summary>
    private string Store(IAttributionMethod method)
    {
        var request = Request(method.Name);
        if (MethodManifest.TryLoad(request.OutDirectory) is null)
        {
            method.Build(request);
        }
        return request.OutDirectory;
    }

    private float[] Image(int row) => _data.Image(row).ToArray();

    private List<AttributionQuery> PlantedQueries() => Planted.Select(r => new AttributionQuery($"train {r}", Image(r))).ToList();

    [TestCase("das")]
    [TestCase("gradient-cosine")]
    public void Attribute_PlantedDuplicate_RanksItsTrainingImageFirst(string name)
    {
        var method = AttributionMethods.Find(name);
        using var scorer = method.Open(Store(method), _model, SessionSettings.Default);
        var top = scorer.TopK(PlantedQueries(), 5);
        for (int q = 0; q < Planted.Length; q++)
        {
            Assert.That(top[q].Indices[0], Is.EqualTo(Planted[q]), $"{name}, query {q}: top-5 {string.Join(",", top[q].Indices)}");
        }
    }

    [Test]
    public void GradientCosine_Scores_EqualCosinesOfStoredFeatures()
    {
        var method = new GradientCosineMethod();
        var dir = Store(method);
        using var scorer = method.Open(dir, _model, SessionSettings.Default);
        var scores = scorer.Scores(PlantedQueries());
        using var store = FeatureStore.Open(dir);
        var rows = Enumerable.Range(0, Rows).Select(i =>
        {
            var row = new float[Dim];
            store.ReadRow(i, row);
            return row;
        }).ToArray();
        for (int q = 0; q < Planted.Length; q++)
        {
            // The query is a training image: its features are that row's, so the scores are the row's cosines with every row.
            var a = rows[Planted[q]];
            for (int i = 0; i < Rows; i++)
            {
                double dot = 0, na = 0, nb = 0;
                for (int e = 0; e < Dim; e++)
                {
                    dot += (double)a[e] * rows[i][e];
                    na += (double)a[e] * a[e];
                    nb += (double)rows[i][e] * rows[i][e];
                }
                Assert.That(scores[(q * Rows) + i], Is.EqualTo(dot / Math.Sqrt(na * nb)).Within(1e-4), $"query {q}, row {i}");
            }
        }
    }

    [Test]
    public void Das_Features_EqualNormalisedThenAveragedProjectedGradients()
    {
        var method = new DasMethod();
        var dir = Store(method);
        var plan = method.Options(Request("das")).Plan;
        Assert.That(plan.NormalizePairs, Is.True);
        Assert.That(plan.Measurement, Is.EqualTo(MeasurementKind.Mean));
        int[] rows = [0, 17, 39];
        // Raw per-pair gradients of the mean output from an unnormalised source, normalised and averaged here in float64.
        using var model = new GradientModel(_model, plan with { NormalizePairs = false }, new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, Dim, 11));
        var source = model.Extractor.Source;
        long p = source.Dimension;
        var average = new double[rows.Length * p];
        var images = rows.SelectMany(Image).ToArray();
        int pairs = 0;
        source.ForEachPair(images, rows.Length, source.GradientOutputs, default, pair =>
        {
            pairs++;
            for (int b = 0; b < rows.Length; b++)
            {
                var g = source.GradientOutputs.SelectMany(o =>
                {
                    var all = pair.Outputs[o];
                    int n = all.Length / rows.Length;
                    return all.Skip(b * n).Take(n);
                }).ToArray();
                Assert.That(g, Has.Length.EqualTo(p));
                double norm = Math.Sqrt(g.Sum(v => (double)v * v));
                for (long e = 0; e < p; e++)
                {
                    average[(b * p) + e] += g[e] / norm / plan.Pairs;
                }
            }
        });
        Assert.That(pairs, Is.EqualTo(3));
        var projector = new DenseProjector(p, Dim, ProjectionKind.Rademacher, 11);
        var expected = new float[rows.Length * Dim];
        projector.ProjectBatch(average.Select(v => (float)v).ToArray(), rows.Length, expected);
        using var store = FeatureStore.Open(dir);
        var actual = new float[Dim];
        for (int b = 0; b < rows.Length; b++)
        {
            store.ReadRow(rows[b], actual);
            var want = expected.AsSpan(b * Dim, Dim).ToArray();
            float scale = want.Max(MathF.Abs);
            Assert.That(actual, Is.EqualTo(want).Within(1e-4f * scale), $"row {rows[b]}");
        }
    }

    [Test]
    public void Das_Residuals_EqualLossesComputedByHand()
    {
        var dir = Store(new DasMethod());
        var directory = ModelDirectory.Open(_model);
        var alphaBars = directory.CreateSchedule().AlphaBars;
        long[] timesteps = FeaturizationPlan.Evenly(1000, 3).ToArray();
        int d = _data.ImageLength;
        var losses = new double[Rows];
        using (var denoiser = directory.OpenDenoiser())
        {
            var noise = new float[d];
            var xt = new float[Rows * d];
            var eps = new float[Rows * d];
            for (int j = 0; j < timesteps.Length; j++)
            {
                // The plan's noise for timestep index j, draw 0: stream j of the noise seed.
                new CounterRng(5, j).FillNormal(noise);
                double a = Math.Sqrt(alphaBars[timesteps[j]]), s = Math.Sqrt(1 - alphaBars[timesteps[j]]);
                for (int i = 0; i < Rows; i++)
                {
                    for (int e = 0; e < d; e++)
                    {
                        xt[(i * d) + e] = (float)((a * _data.Image(i)[e]) + (s * noise[e]));
                    }
                }
                denoiser.Predict(xt, Enumerable.Repeat(timesteps[j], Rows).ToArray(), Rows, eps);
                for (int i = 0; i < Rows; i++)
                {
                    double sum = 0;
                    for (int e = 0; e < d; e++)
                    {
                        double diff = eps[(i * d) + e] - noise[e];
                        sum += diff * diff;
                    }
                    losses[i] += sum / d / timesteps.Length;
                }
            }
        }
        var stored = NpyFormat.ReadMatrix(Path.Combine(dir, StoreFiles.Losses)).Values;
        var residuals = NpyFormat.ReadMatrix(Path.Combine(dir, StoreFiles.Residuals)).Values;
        double mean = losses.Average();
        for (int i = 0; i < Rows; i++)
        {
            Assert.That(stored[i], Is.EqualTo(losses[i]).Within(1e-5 * losses[i]), $"loss of row {i}");
            Assert.That(residuals[i], Is.EqualTo(losses[i] / mean).Within(1e-5 * losses[i] / mean), $"residual of row {i}");
        }
        Assert.That(residuals.Max() - residuals.Min(), Is.GreaterThan(1e-3), "the residuals should differ between examples");
    }

    [Test]
    public void Das_CancelledThenResumed_SameStoreAsUninterrupted()
    {
        var data = SubsetSpec.Parse("0:16").Apply(_data);
        var method = new DasMethod();
        var whole = Request("das-whole-16", data);
        method.Build(whole);
        using var cancel = new CancellationTokenSource();
        var progress = new SyncProgress<MethodProgress>(p =>
        {
            if (p.Stage == "featurize" && p.Done >= 8)
            {
                cancel.Cancel(); // after the first batch of 8 is on disk
            }
        });
        var resumed = Request("das-resumed-16", data, progress);
        Assert.Throws<OperationCanceledException>(() => method.Build(resumed, cancel.Token));
        Assert.That(MethodManifest.TryLoad(resumed.OutDirectory), Is.Null, "an interrupted build has no method.json");
        method.Build(resumed with { Progress = null });
        foreach (var file in new[] { StoreFiles.Features, StoreFiles.Losses, StoreFiles.Residuals, StoreFiles.Preconditioner })
        {
            Assert.That(File.ReadAllBytes(Path.Combine(resumed.OutDirectory, file)), Is.EqualTo(File.ReadAllBytes(Path.Combine(whole.OutDirectory, file))), file);
        }
    }

    [Test]
    public void Featurize_StoreWithPairNormalisation_RefusesToResumeWithout()
    {
        var data = SubsetSpec.Parse("0:2").Apply(_data);
        var plan = new FeaturizationPlan([100], 1, 5, MeasurementKind.Mean) { NormalizePairs = true };
        var options = new FeaturizeOptions
        {
            ModelDirectory = _model,
            Data = data,
            Plan = plan,
            Projection = new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, 64, 1),
            OutDirectory = Path.Combine(_dir, "normalised-2"),
        };
        using (TrakEngine.Featurize(options))
        {
        }
        var ex = Assert.Throws<StoreFormatException>(() => TrakEngine.Featurize(options with { Plan = plan with { NormalizePairs = false } }).Dispose());
        Assert.That(ex!.Message, Does.Contain(TrakEngine.PairNormalizationSetting));
    }

    [Test]
    public void Das_FactoredProjection_Refused()
    {
        var request = Request("das-factored") with { Settings = Settings with { Projector = ProjectorKind.Factored } };
        Assert.That(() => new DasMethod().Build(request), Throws.TypeOf<SettingException>().With.Property("Setting").EqualTo("Projector").And.Message.EndsWith("use Projector = dense"));
    }
}
