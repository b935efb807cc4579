using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests.Attribution;

/// <summary>The model-free baselines, pixel and random, on the first 40 embedded training images.</summary>
public sealed class BaselineMethodTests : TempDirectoryTest
{
    private const int Rows = 40;

    /// <summary>The embedded images named by path, so that the store's source.json loads them from anywhere.</summary>
    private static string ImagesPath => Path.Combine(RepositoryRoot(), "models", "data", DatasetLocator.EmbeddedName, DatasetLocator.EmbeddedImagesFile);

    private static ImageDataset Data => new DatasetLocator().Load(ImagesPath, $"0:{Rows}", 16);

    private string Build(IAttributionMethod method, MethodSettings? settings = null, string? name = null)
    {
        var dir = Path.Combine(TempDir, name ?? method.Name);
        method.Build(new MethodBuildRequest
        {
            ModelDirectory = "no-model",
            Data = Data,
            Source = new StoreSource("no-model", ImagesPath, $"0:{Rows}", 16),
            OutDirectory = dir,
            Settings = settings ?? new MethodSettings(),
        });
        return dir;
    }

    private static IAttributionScorer Open(string dir) => AttributionMethods.Open(dir, session: SessionSettings.Default);

    private static List<AttributionQuery> Planted(IEnumerable<int> rows)
    {
        var data = Data;
        return rows.Select(r => new AttributionQuery($"train {r}", data.Image(r).ToArray())).ToList();
    }

    [TestCase(PixelMetric.Cosine)]
    [TestCase(PixelMetric.L2)]
    public void Pixel_PlantedDuplicate_RanksItsTrainingImageFirst(PixelMetric metric)
    {
        using var scorer = Open(Build(new PixelMethod(), new MethodSettings { PixelMetric = metric }));
        int[] planted = [5, 17, 33];
        var top = scorer.TopK(Planted(planted), 5);
        for (int q = 0; q < planted.Length; q++)
        {
            Assert.That(top[q].Indices[0], Is.EqualTo(planted[q]), $"query {q}: top-5 {string.Join(",", top[q].Indices)}");
            Assert.That(top[q].Scores[0], Is.EqualTo(metric == PixelMetric.Cosine ? 1f : 0f).Within(1e-5));
        }
    }

    [TestCase(PixelMetric.Cosine)]
    [TestCase(PixelMetric.L2)]
    public void Pixel_Scores_EqualHandComputedSimilarities(PixelMetric metric)
    {
        using var scorer = Open(Build(new PixelMethod(), new MethodSettings { PixelMetric = metric }));
        var data = Data;
        var rng = new Random(3);
        var query = data.Image(8).ToArray().Select(v => Math.Clamp(v + (0.4f * (float)(rng.NextDouble() - 0.5)), -1f, 1f)).ToArray();
        var scores = scorer.Scores([new AttributionQuery("noisy 8", query)]);
        Assert.That(scores, Has.Length.EqualTo(Rows));
        for (int i = 0; i < Rows; i++)
        {
            var x = data.Image(i).ToArray();
            double dot = 0, nq = 0, nx = 0, dist = 0;
            for (int e = 0; e < x.Length; e++)
            {
                dot += (double)query[e] * x[e];
                nq += (double)query[e] * query[e];
                nx += (double)x[e] * x[e];
                dist += ((double)query[e] - x[e]) * (query[e] - x[e]);
            }
            double expected = metric == PixelMetric.Cosine ? dot / Math.Sqrt(nq * nx) : -Math.Sqrt(dist);
            Assert.That(scores[i], Is.EqualTo(expected).Within(1e-5 * Math.Max(1, Math.Abs(expected))), $"row {i}");
        }
    }

    [Test]
    public void Pixel_SourceNowLoadsOtherImages_OpenRefuses()
    {
        var dir = Build(new PixelMethod());
        new StoreSource("no-model", ImagesPath, $"1:{Rows + 1}", 16).Save(dir);
        Assert.That(() => Open(dir), Throws.TypeOf<UserInputException>().With.Message.Contains("build it again"));
    }

    [Test]
    public void Random_SameSeed_SameScoresForAQueryInAnyBatch()
    {
        var settings = new MethodSettings { Seed = 7 };
        using var a = Open(Build(new RandomMethod(), settings, "a"));
        using var b = Open(Build(new RandomMethod(), settings, "b"));
        var queries = Planted([3, 4]);
        var pair = a.Scores(queries);
        var alone = b.Scores([queries[1]]);
        Assert.That(alone, Is.EqualTo(pair.AsSpan(Rows, Rows).ToArray()));
        Assert.That(a.Scores(queries), Is.EqualTo(pair));
        Assert.That(pair.AsSpan(0, Rows).ToArray(), Is.Not.EqualTo(alone), "two queries get different scores");
        Assert.That(pair, Has.All.InRange(-1f, 1f));
    }

    [Test]
    public void Random_OtherSeed_DifferentScores()
    {
        using var a = Open(Build(new RandomMethod(), new MethodSettings { Seed = 7 }, "a"));
        using var b = Open(Build(new RandomMethod(), new MethodSettings { Seed = 8 }, "b"));
        var queries = Planted([3]);
        var sa = a.Scores(queries);
        var sb = b.Scores(queries);
        Assert.That(sa.Zip(sb).Count(p => p.First == p.Second), Is.LessThan(2));
    }

    [Test]
    public void Random_PlantedDuplicates_NotSystematicallyFirst_AndTopTenNearChanceOverlapWithPixel()
    {
        using var pixel = Open(Build(new PixelMethod()));
        using var random = Open(Build(new RandomMethod(), new MethodSettings { Seed = 1 }));
        var planted = Enumerable.Range(0, 20).ToArray();
        var queries = Planted(planted);
        var px = pixel.TopK(queries, 10);
        var rnd = random.TopK(queries, 10);
        int firsts = 0;
        double overlap = 0;
        for (int q = 0; q < planted.Length; q++)
        {
            Assert.That(px[q].Indices[0], Is.EqualTo(planted[q]), "pixel ranks the duplicate first");
            firsts += rnd[q].Indices[0] == planted[q] ? 1 : 0;
            overlap += px[q].Indices.Intersect(rnd[q].Indices).Count();
        }
        overlap /= planted.Length;
        TestContext.Out.WriteLine($"random ranks the duplicate first for {firsts} of {planted.Length}; mean top-10 overlap with pixel {overlap:F2} (chance {10.0 * 10 / Rows:F2})");
        // Chance: 20/40 = 0.5 firsts and 2.5 shared rows of 10.
        Assert.That(firsts, Is.LessThanOrEqualTo(3));
        Assert.That(overlap, Is.LessThan(5));
    }

    [Test]
    public void Open_StoreWithoutMethodJson_SaysItIsIncomplete()
    {
        var dir = Build(new RandomMethod());
        File.Delete(Path.Combine(dir, StoreFiles.Method));
        Assert.That(() => new RandomMethod().Open(dir, "no-model", SessionSettings.Default), Throws.TypeOf<UserInputException>().With.Message.Contains("not complete"));
    }
}
