using System.Reflection;
using System.Xml.Linq;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Imaging;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Sampling;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests;

/// <summary>
/// The facade against a small D-TRAK store of the shipped model, built once through the facade; every answer is
/// checked against the store's scorer opened directly.
/// </summary>
[TestFixture]
public sealed class AttributorTests : TempDirectoryTest
{
    private const int Rows = 40;
    private const string Subset = "0:40";

    private string _dir = "";
    private string _model = "";
    private string _store = "";
    private ImageDataset _data = null!;
    private Attributor _attributor = null!;
    private IAttributionScorer _scorer = null!;
    private readonly List<MethodProgress> _buildProgress = [];

    [OneTimeSetUp]
    public void BuildStore()
    {
        _dir = Directory.CreateTempSubdirectory("oa-attributor-").FullName;
        _model = Path.Combine(RepositoryRoot(), "models", "fm16");
        _store = Path.Combine(_dir, "dtrak");
        _data = new DatasetLocator().Load("embedded", Subset, 16);
        // k > N: every training row has a direction of its own, so a training image ranks its own row first.
        Attributor.BuildStore(new StoreBuildOptions
        {
            Method = "d-trak",
            ModelDirectory = _model,
            Data = "embedded",
            Subset = Subset,
            StoreDirectory = _store,
            Settings = new MethodSettings { Timesteps = 2, Dim = 512 },
        }, new SyncProgress<MethodProgress>(_buildProgress.Add));
        _attributor = Attributor.Open(_model, _store);
        _scorer = AttributionMethods.Open(_store, _model);
    }

    [OneTimeTearDown]
    public void Remove()
    {
        _attributor?.Dispose();
        _scorer?.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Test]
    public void BuildStore_DTrak_ReportsProgressAndOpensWithTheModelsGeometry()
    {
        Assert.That(_buildProgress, Is.Not.Empty);
        Assert.That(_buildProgress.Max(p => p.Done), Is.EqualTo(Rows));
        Assert.That((_attributor.Method, _attributor.Rows, _attributor.Channels, _attributor.ImageSize), Is.EqualTo(("d-trak", (long)Rows, 1, 16)));
    }

    [Test]
    public void Attribute_TrainingImage_SameRowsAndScoresAsTheScorerOpenedDirectly()
    {
        const int row = 13;
        var ranking = _attributor.Attribute(Image(row), top: 6, label: "row 13");

        var direct = _scorer.Scores([new AttributionQuery("direct", Image(row))]);
        var expected = TopKSelection.Select(direct, 6);
        Assert.That(ranking.Query, Is.EqualTo("row 13"));
        Assert.That(ranking.Top.Select(r => r.Index), Is.EqualTo(expected.Indices));
        Assert.That(ranking.Top.Select(r => r.Score), Is.EqualTo(expected.Scores));
        Assert.That(ranking.Top.Select(r => r.Rank), Is.EqualTo(Enumerable.Range(1, 6)));
        Assert.That(ranking.Top[0].Index, Is.EqualTo(row));
    }

    [Test]
    public void Attribute_Batch_EachQueryRankedAsTheScorerRanksIt()
    {
        var queries = new[] { 3, 21, 38 }.Select(r => new AttributionQuery($"row {r}", Image(r))).ToList();
        var progress = new List<MethodProgress>();

        var rankings = _attributor.Attribute(queries, top: 4, new SyncProgress<MethodProgress>(progress.Add));

        var expected = _scorer.TopK(queries, 4);
        Assert.That(rankings, Has.Count.EqualTo(3));
        for (int q = 0; q < 3; q++)
        {
            Assert.That(rankings[q].Query, Is.EqualTo(queries[q].Label));
            Assert.That(rankings[q].Top.Select(r => r.Index), Is.EqualTo(expected[q].Indices));
            Assert.That(rankings[q].Top.Select(r => r.Score), Is.EqualTo(expected[q].Scores));
        }
        Assert.That(progress, Is.EqualTo(new[] { new MethodProgress("score", 0, 3), new MethodProgress("score", 3, 3) }));
    }

    [Test]
    public void AttributePng_FileAndStream_SameRankingAsThePixelsRead()
    {
        const int row = 9;
        var png = Path.Combine(TempDir, "query.png");
        PngImage.Write(png, Image(row), 1, 16, 16);

        var fromFile = _attributor.AttributePng(png, top: 5);
        using var stream = File.OpenRead(png);
        var fromStream = _attributor.AttributePng(stream, top: 5, label: "stream");

        var direct = TopKSelection.Select(_scorer.Scores([new AttributionQuery("direct", PngImage.Read(png, 1, 16).Pixels)]), 5);
        Assert.That(fromFile.Query, Is.EqualTo("query.png"));
        Assert.That(fromFile.Top.Select(r => r.Index), Is.EqualTo(direct.Indices));
        Assert.That(fromStream.Top, Is.EqualTo(fromFile.Top));
        Assert.That(fromFile.Top[0].Index, Is.EqualTo(row), "an 8-bit training image survives the PNG round trip exactly");
    }

    [Test]
    public void AttributeSeeds_TwoSeeds_SameAsGeneratedQueriesScoredDirectly()
    {
        long[] seeds = [5, 6];
        var progress = new List<MethodProgress>();

        var rankings = _attributor.AttributeSeeds(seeds, top: 5, SamplerKind.Ddim, steps: 8, new SyncProgress<MethodProgress>(progress.Add));

        var queries = GeneratedQueries.Generate(Runtime.ModelDirectory.Open(_model), seeds, SamplerKind.Ddim, 8, Runtime.SessionSettings.Default);
        var expected = _scorer.TopK(queries, 5);
        Assert.That(rankings.Select(r => r.Query), Is.EqualTo(new[] { "seed 5", "seed 6" }));
        Assert.That(rankings.Select(r => r.Top.Select(t => t.Index)), Is.EqualTo(expected.Select(e => e.Indices)));
        Assert.That(rankings.Select(r => r.Top.Select(t => t.Score)), Is.EqualTo(expected.Select(e => e.Scores)));
        Assert.That(progress.Select(p => p.Stage).Distinct(), Is.EqualTo(new[] { "generate", "score" }));
    }

    [Test]
    public void Attribute_WrongPixelCount_ThrowsUserInputNamingTheGeometry()
    {
        var e = Assert.Throws<UserInputException>(() => _attributor.Attribute(new float[10], top: 3));
        Assert.That(e!.Message, Does.Contain("1×16×16 = 256").And.Contain("10 pixel values"));
    }

    [Test]
    public void Attribute_Cancelled_ThrowsOperationCanceled()
    {
        using var cancel = new CancellationTokenSource();
        cancel.Cancel();
        Assert.That(() => _attributor.Attribute(Image(1), top: 3, cancel: cancel.Token), Throws.InstanceOf<OperationCanceledException>());
    }

    [Test]
    public void Open_FolderThatIsNoStore_ThrowsUserInputNamingIt()
    {
        var empty = Directory.CreateDirectory(Path.Combine(TempDir, "empty")).FullName;
        var e = Assert.Throws<UserInputException>(() => Attributor.Open(_model, empty));
        Assert.That(e!.Message, Does.Contain(empty));
    }

    [Test]
    public void WriteGrid_TwoQueries_OneRowPerQueryWithItsTopImages()
    {
        var queries = new[] { 2, 30 }.Select(r => new AttributionQuery($"row {r}", Image(r))).ToList();
        var rankings = _attributor.Attribute(queries, top: 3);
        var png = Path.Combine(TempDir, "grid.png");

        _attributor.WriteGrid(png, queries, rankings, scale: 2);

        var (pixels, _, height, width) = PngImage.Read(png, 1);
        Assert.That(width, Is.GreaterThan(height), "4 columns, 2 rows");
        Assert.That(pixels, Has.Length.EqualTo(width * height));
    }

    [Test]
    public void Verify_SoundStore_ReadsEveryRowAndFindsNothing()
    {
        var check = _attributor.Verify();

        Assert.That(check.Problems, Is.Empty);
        Assert.That(check.RowsChecked, Is.EqualTo(Rows));
        Assert.That(check.FeatureStores, Is.EqualTo(new[] { _store }));
    }

    [Test]
    public void CoreAssembly_Version_IsTheOneInDirectoryBuildProps()
    {
        var props = XDocument.Load(Path.Combine(RepositoryRoot(), "Directory.Build.props"));
        var version = props.Descendants("Version").Single().Value;
        var informational = typeof(Attributor).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;
        // The SDK appends "+commit" to the informational version when it knows the commit.
        Assert.That(informational.Split('+')[0], Is.EqualTo(version));
    }

    /// <summary>
    /// The fast query setting: with Q = K (2) the scores are the default's bit for bit; with Q = 1 the query is measured at one
    /// timestep (t = 500 of 0 and 500, the store's own noise there), so its scores differ.
    /// </summary>
    [Test]
    public void QueryTimesteps_AllKIsTheDefault_OneIsAnotherMeasurementOfTheSameImage()
    {
        const int row = 17;
        var query = new[] { new AttributionQuery("row 17", Image(row)) };
        var baseline = _scorer.Scores(query);
        using var all = AttributionMethods.Open(_store, _model, SessionSettings.Default with { QueryTimesteps = 2 });
        using var one = AttributionMethods.Open(_store, _model, SessionSettings.Default with { QueryTimesteps = 1 });

        Assert.That(all.Scores(query), Is.EqualTo(baseline));
        var fast = one.Scores(query);
        Assert.That(fast, Is.Not.EqualTo(baseline));
        using (var trak = OnnxAttribution.Core.Attribution.TrakScorer.Open(_store, _model, SessionSettings.Default with { QueryTimesteps = 1 }))
        {
            Assert.That(trak.Extractor.Source.Plan.Timesteps, Is.EqualTo(new long[] { 500 }));
            Assert.That(trak.Extractor.Source.Plan.TimestepPositions, Is.EqualTo(new[] { 1 }));
        }
        // The default is the mean of this measurement (t = 500) and the one at t = 0; on 40 rows they correlate at ≈ 0.3.
        Assert.That(Pearson(fast, baseline), Is.GreaterThan(0.1));
        using var attributor = Attributor.Open(_model, _store, SessionSettings.Default with { QueryTimesteps = 1 });
        Assert.That(attributor.Attribute(Image(row), top: 5).Top.Select(r => r.Score), Is.EqualTo(TopKSelection.Select(fast, 5).Scores));
    }

    /// <summary>
    /// Training rows and queries project through the same sign tables one gradient at a time, so a training image asked as a
    /// query gives its own row's features bit for bit (rows were featurized in batches of 16, the query alone).
    /// </summary>
    [Test]
    public void Features_TrainingImageAsQuery_EqualsItsStoredRowBitForBit()
    {
        using var trak = OnnxAttribution.Core.Attribution.TrakScorer.Open(_store, _model);
        foreach (int row in new[] { 0, 17, 39 })
        {
            var features = trak.Features(Image(row), 1);
            var stored = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(trak.Store.GetRowBytes(row)).ToArray();
            Assert.That(features.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(stored.Select(BitConverter.SingleToInt32Bits)), $"row {row}");
        }
    }

    /// <summary>The whole query path with the ONNX Runtime scan: the same rows as the SIMD scan, scores to float32 rounding.</summary>
    [Test]
    public void Scan_Onnx_SameTopRowsAsTheSimdScan()
    {
        var images = new[] { 3, 17, 28 }.SelectMany(Image).ToArray();
        using var simd = OnnxAttribution.Core.Attribution.TrakScorer.Open(_store, _model, SessionSettings.Default with { Scan = ScanEngine.Simd });
        using var onnx = OnnxAttribution.Core.Attribution.TrakScorer.Open(_store, _model, SessionSettings.Default with { Scan = ScanEngine.Onnx });
        Assert.That((simd.Scan, onnx.Scan), Is.EqualTo((ScanEngine.Simd, ScanEngine.Onnx)));

        var expected = simd.Attribute(images, 3, 8);
        var found = onnx.Attribute(images, 3, 8);

        for (int q = 0; q < 3; q++)
        {
            Assert.That(found[q].Indices, Is.EqualTo(expected[q].Indices), $"query {q}");
            float tolerance = 1e-5f * expected[q].Scores.Max(MathF.Abs);
            Assert.That(found[q].Scores, Is.EqualTo(expected[q].Scores).Within(tolerance), $"query {q}");
        }
    }

    /// <summary>
    /// On a GPU (<c>-p:OrtFlavor=cuda</c>, CUDA 13, cuDNN 9; run by tools/gpu-check.sh, never by scripts/test.sh): the query
    /// features computed by the CUDA provider, and the query's ranking with the scan on the GPU, against the CPU's.
    /// </summary>
    [Test]
    [Category("Gpu")]
    public void Cuda_FeaturesAndRanking_AgreeWithTheCpu()
    {
        var images = new[] { 3, 17, 28 }.SelectMany(Image).ToArray();
        using var cpu = OnnxAttribution.Core.Attribution.TrakScorer.Open(_store, _model, SessionSettings.Default);
        using var gpu = OnnxAttribution.Core.Attribution.TrakScorer.Open(_store, _model, new SessionSettings(ExecutionDevice.Cuda));
        Assert.That(gpu.Scan, Is.EqualTo(ScanEngine.Onnx));

        var expected = cpu.Features(images, 3);
        var found = gpu.Features(images, 3);
        float scale = expected.Max(MathF.Abs);
        Assert.That(found, Is.EqualTo(expected).Within(1e-3f * scale), "features");
        var cpuTop = cpu.Attribute(images, 3, 5);
        var gpuTop = gpu.Attribute(images, 3, 5);
        Assert.That(gpuTop.Select(r => r.Indices[0]), Is.EqualTo(cpuTop.Select(r => r.Indices[0])), "each query's best row");
    }

    [Test]
    public void ReducedInTheGraph_QueryFeaturesAndRanking_AgreeWithTheHost()
    {
        // What CUDA runs by default (the pairs summed and P applied in ONNX Runtime's graph), here on the CPU provider.
        var images = new[] { 3, 17, 28 }.SelectMany(Image).ToArray();
        using var host = OnnxAttribution.Core.Attribution.TrakScorer.Open(_store, _model, SessionSettings.Default);
        using var graph = OnnxAttribution.Core.Attribution.TrakScorer.Open(_store, _model, SessionSettings.Default with { Reduction = GradientReduction.Device });
        Assert.That((host.Extractor.ReducedInGraph, graph.Extractor.ReducedInGraph), Is.EqualTo((false, true)));

        var expected = host.Features(images, 3);
        var found = graph.Features(images, 3);
        float scale = expected.Max(MathF.Abs);
        Assert.That(found, Is.EqualTo(expected).Within(1e-4f * scale), "features");
        Assert.That(found, Is.Not.EqualTo(expected), "computed another way, so not bit for bit");
        var hostTop = host.Attribute(images, 3, 5);
        var graphTop = graph.Attribute(images, 3, 5);
        Assert.That(graphTop.Select(r => r.Indices), Is.EqualTo(hostTop.Select(r => r.Indices)), "each query's five best rows");
    }

    [Test]
    public void QueryTimesteps_MoreThanTheStoreHas_NamesTheStoresCount()
    {
        Assert.That(() => AttributionMethods.Open(_store, _model, SessionSettings.Default with { QueryTimesteps = 3 }),
            Throws.TypeOf<UserInputException>().With.Message.Contains("featurized at 2 timesteps; choose 1 to 2"));
    }

    [Test]
    public void QueryTimesteps_MethodWithoutTimesteps_IsRefusedNamingIt()
    {
        var pixel = Path.Combine(_dir, "pixel");
        Attributor.BuildStore(new StoreBuildOptions { Method = "pixel", ModelDirectory = _model, Data = "embedded", Subset = Subset, StoreDirectory = pixel });

        Assert.That(() => AttributionMethods.Open(pixel, _model, SessionSettings.Default with { QueryTimesteps = 1 }),
            Throws.TypeOf<UserInputException>().With.Message.Contains("method pixel").And.Message.Contains("trak, d-trak, das"));
    }

    [Test]
    public void Rank_ScoresTheCallerHas_SameRankingsAsAttribute()
    {
        var queries = new[] { 4, 33 }.Select(r => new AttributionQuery($"row {r}", Image(r))).ToList();

        var ranked = _attributor.Rank(queries, _scorer.Scores(queries), 7);

        var attributed = _attributor.Attribute(queries, 7);
        Assert.That(ranked.Select(r => r.Query), Is.EqualTo(attributed.Select(r => r.Query)));
        Assert.That(ranked.Select(r => r.Top), Is.EqualTo(attributed.Select(r => r.Top)));
        Assert.That(() => _attributor.Rank(queries, new float[Rows], 7), Throws.ArgumentException.With.Message.Contains("2 queries × 40 rows"));
    }

    [Test]
    public void RowDetails_On_EachRowCarriesItsTrainingLabel_OffLeavesThemOut()
    {
        using var detailed = Attributor.Open(_model, _store);
        detailed.RowDetails = true;

        var ranking = detailed.Attribute(Image(11), top: 8);

        Assert.That(ranking.Top.Select(r => r.Label), Is.EqualTo(ranking.Top.Select(r => (int?)_data.Labels![(int)r.Index])));
        Assert.That(ranking.Top.Select(r => r.Caption), Is.All.Null, "an unconditional model's rows have no captions");
        Assert.That(_attributor.Attribute(Image(11), top: 8).Top.Select(r => r.Label), Is.All.Null);
        Assert.That(ranking.Top.Select(r => r.Index), Is.EqualTo(_attributor.Attribute(Image(11), top: 8).Top.Select(r => r.Index)));
    }

    [Test]
    public void Open_TwoStores_RanksAsTheirCombination()
    {
        var pixel = PixelStore(Subset, "pixel-combined");
        var queries = new[] { 6, 25 }.Select(r => new AttributionQuery($"row {r}", Image(r))).ToList();

        using var combined = Attributor.Open(_model, [_store, pixel]);
        var rankings = combined.Attribute(queries, 9);

        using IAttributionScorer direct = new CombinedScorer([AttributionMethods.Open(_store, _model), AttributionMethods.Open(pixel, _model)]);
        var expected = direct.TopK(queries, 9);
        Assert.That(combined.Method, Is.EqualTo("d-trak+pixel"));
        Assert.That(rankings.Select(r => r.Top.Select(t => t.Index)), Is.EqualTo(expected.Select(e => e.Indices)));
        Assert.That(rankings.Select(r => r.Top.Select(t => t.Score)), Is.EqualTo(expected.Select(e => e.Scores)));
        Assert.That(rankings[0].Top.Select(t => t.Index), Is.Not.EqualTo(_attributor.Attribute(queries, 9)[0].Top.Select(t => t.Index)),
            "the combination ranks otherwise than D-TRAK alone");
    }

    [Test]
    public void Open_CombinationWithAStoreOfOtherRows_RefusedNamingIt()
    {
        var other = PixelStore("0:30", "pixel-30");

        var e = Assert.Throws<UserInputException>(() => Attributor.Open(_model, [_store, other]));

        Assert.That(e!.Message, Does.Contain(other).And.Contain("rows 0:30").And.Contain("one model's training rows"));
    }

    [Test]
    public void WriteGrid_MoreRowsThanItDraws_CappedAtMaxGridColumns()
    {
        var query = new AttributionQuery("row 5", Image(5));
        var many = new QueryRanking("row 5", Enumerable.Range(0, Attributor.MaxGridColumns + 20).Select(r => new RankedRow(r + 1, r % Rows, 1f - (r / 1000f))).ToList());
        var capped = new QueryRanking("row 5", many.Top.Take(Attributor.MaxGridColumns).ToList());

        _attributor.WriteGrid(Path.Combine(TempDir, "many.png"), [query], [many], scale: 1);
        _attributor.WriteGrid(Path.Combine(TempDir, "capped.png"), [query], [capped], scale: 1);

        Assert.That(File.ReadAllBytes(Path.Combine(TempDir, "many.png")), Is.EqualTo(File.ReadAllBytes(Path.Combine(TempDir, "capped.png"))));
    }

    [Test]
    public void WriteGrid_StoreWithoutSourceJson_DrawsBlankTilesInsteadOfTheUnknownImages()
    {
        var bare = Path.Combine(TempDir, "bare");
        Directory.CreateDirectory(bare);
        foreach (var file in Directory.EnumerateFiles(_store).Where(f => Path.GetFileName(f) != StoreFiles.Source))
        {
            File.Copy(file, Path.Combine(bare, Path.GetFileName(file)));
        }
        using var attributor = Attributor.Open(_model, bare);
        var query = new AttributionQuery("row 12", Image(12));
        var ranking = attributor.Attribute([query], 3);

        attributor.WriteGrid(Path.Combine(TempDir, "bare.png"), [query], ranking, scale: 1);
        _attributor.WriteGrid(Path.Combine(TempDir, "full.png"), [query], ranking, scale: 1);

        Assert.That(() => attributor.TrainingData, Throws.TypeOf<UserInputException>().With.Message.Contains(StoreFiles.Source));
        var (blank, _, _, _) = PngImage.Read(Path.Combine(TempDir, "bare.png"), 1);
        var (full, _, _, _) = PngImage.Read(Path.Combine(TempDir, "full.png"), 1);
        Assert.That(blank, Has.Length.EqualTo(full.Length));
        Assert.That(blank, Is.Not.EqualTo(full), "the training images are drawn only where they are known");
    }

    /// <summary>A pixel-method store of the given rows (cheap: no gradients), built once per name.</summary>
    private string PixelStore(string subset, string name)
    {
        var store = Path.Combine(_dir, name);
        if (!Directory.Exists(store))
        {
            Attributor.BuildStore(new StoreBuildOptions { Method = "pixel", ModelDirectory = _model, Data = "embedded", Subset = subset, StoreDirectory = store });
        }
        return store;
    }

    private float[] Image(int row) => _data.Image(row).ToArray();

    private static double Pearson(float[] a, float[] b)
    {
        double ma = a.Average(v => (double)v), mb = b.Average(v => (double)v);
        double ab = 0, aa = 0, bb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            ab += (a[i] - ma) * (b[i] - mb);
            aa += (a[i] - ma) * (a[i] - ma);
            bb += (b[i] - mb) * (b[i] - mb);
        }
        return ab / Math.Sqrt(aa * bb);
    }
}
