using OnnxAttribution.Core.Attribution.Ensembles;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests.Attribution;

/// <summary>
/// The ensemble scorer on hand-made members whose ε̂ = s_m·x_t, so every member's loss has an exact reference, and on
/// given loss matrices.
/// </summary>
public sealed class EnsembleMethodTests : TempDirectoryTest
{
    private const int Size = 2;
    private static readonly ScheduleSettings Schedule = new(ScheduleKind.Linear, 1000);

    // 5 rows in 3 groups; members 0 and 2 see group 0, members 0 and 1 group 1, members 1 and 3 group 2.
    private static readonly int[] GroupOfRow = [0, 0, 1, 2, 2];
    private static readonly string[] Encoding = ["110", "011", "100", "001"];

    private static EnsembleDesign Design() =>
        EnsembleDesign.Create(5, 3, 4, GroupingKind.Contiguous, 0, 0, 0, "test") with { GroupOfRow = GroupOfRow, Encoding = Encoding };

    /// <summary>An ensemble folder whose member m predicts ε̂ = scales[m]·x_t.</summary>
    private string WriteEnsemble(float[] scales, EnsembleScoring scoring)
    {
        var dir = Path.Combine(TempDir, "ensemble");
        Design().Save(dir);
        for (int m = 0; m < scales.Length; m++)
        {
            var member = Path.Combine(dir, EnsembleDesign.MemberFolder(m));
            Directory.CreateDirectory(member);
            TinyModels.WriteForward(Path.Combine(member, "forward.onnx"), 1, Size, scale: scales[m], timeScale: 0);
            new ModelMetadata { Name = $"member {m}", ImageSize = Size, Channels = 1, Schedule = Schedule }.Save(member);
        }
        new StoreSource(Path.Combine(dir, EnsembleDesign.MemberFolder(0)), "test", "all", Size).Save(dir);
        MethodManifest.Of(EnsembleMethod.MethodName, scoring).Save(dir);
        return dir;
    }

    private static List<AttributionQuery> Queries(int count, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count)
            .Select(q => new AttributionQuery($"q{q}", Enumerable.Range(0, Size * Size).Select(_ => (float)(2 * rng.NextDouble() - 1)).ToArray()))
            .ToList();
    }

    /// <summary>ℓ_m(q) by the definition, in float64: the mean over pairs of ‖ε − s·x_t‖²/D.</summary>
    private static double ReferenceLoss(float scale, float[] image, EnsembleScoring scoring)
    {
        var schedule = new NoiseSchedule(Schedule);
        var plan = scoring.Plan;
        var noise = new float[image.Length];
        double sum = 0;
        for (int j = 0; j < plan.Timesteps.Count; j++)
        {
            double ab = schedule.AlphaBars[plan.Timesteps[j]];
            for (int d = 0; d < plan.NoiseDraws; d++)
            {
                plan.Noise(j, d, noise);
                sum += image.Select((x, i) => Math.Pow(scale * (Math.Sqrt(ab) * x + Math.Sqrt(1 - ab) * noise[i]) - noise[i], 2)).Average();
            }
        }
        return sum / plan.Pairs;
    }

    [Test]
    public void Scores_TinyMembers_MatchExactReference()
    {
        float[] scales = [0.9f, 0.2f, 0.6f, 0.4f];
        var scoring = new EnsembleScoring([0, 250, 500, 999], 2, 7, 4, BatchSize: 5); // batches cut across queries and pairs
        var queries = Queries(3, 1);
        using var scorer = AttributionMethods.Open(WriteEnsemble(scales, scoring));
        Assert.That(scorer.Method, Is.EqualTo("ensemble"));
        Assert.That(scorer.Rows, Is.EqualTo(5));
        var losses = ((EnsembleScorer)scorer).Losses(queries);
        var scores = scorer.Scores(queries);
        for (int q = 0; q < queries.Count; q++)
        {
            var l = scales.Select(s => ReferenceLoss(s, queries[q].Image, scoring)).ToArray();
            Assert.That(losses.AsSpan(q * 4, 4).ToArray(), Is.EqualTo(l).Within(1e-3).Percent);
            double g0 = (l[1] + l[3]) / 2 - (l[0] + l[2]) / 2;
            double g1 = (l[2] + l[3]) / 2 - (l[0] + l[1]) / 2;
            double g2 = (l[0] + l[2]) / 2 - (l[1] + l[3]) / 2;
            double[] expected = [g0, g0, g1, g2, g2];
            Assert.That(scores.AsSpan(q * 5, 5).ToArray(), Is.EqualTo(expected).Within(1e-4 * l.Max()), $"query {q}");
        }
    }

    [Test]
    public void TopK_MembersThatSawGroupZeroDenoiseBetter_RanksItsRowsFirst()
    {
        // Members 0 and 2 (the ones that saw group 0) predict the noise of x_t well at these timesteps, 1 and 3 poorly.
        var scoring = new EnsembleScoring([500, 700, 900], 2, 3, 4);
        var queries = Queries(2, 2);
        using var scorer = AttributionMethods.Open(WriteEnsemble([0.95f, 0.3f, 0.95f, 0.3f], scoring));
        var scores = scorer.Scores(queries);
        var top = scorer.TopK(queries, 2);
        for (int q = 0; q < queries.Count; q++)
        {
            Assert.That(top[q].Indices, Is.EqualTo(new long[] { 0, 1 }));
            Assert.That(scores[q * 5], Is.GreaterThan(0));
            Assert.That(scores[q * 5 + 3], Is.LessThan(0)); // group 2: seen only by the poor members
        }
    }

    [Test]
    public void GroupScores_GivenLosses_MeanUnseenMinusMeanSeen()
    {
        var design = Design();
        var groups = new float[3];
        EnsembleMethod.GroupScores([1.0, 2.0, 4.0, 8.0], design, groups);
        Assert.That(groups, Is.EqualTo(new[] { (2 + 8) / 2f - (1 + 4) / 2f, (4 + 8) / 2f - (1 + 2) / 2f, (1 + 4) / 2f - (2 + 8) / 2f }).Within(1e-6));
        var rows = EnsembleMethod.RowScores([1.0, 2.0, 4.0, 8.0, 1.0, 1.0, 1.0, 1.0], 2, design);
        Assert.That(rows, Is.EqualTo(new[] { groups[0], groups[0], groups[1], groups[2], groups[2], 0f, 0f, 0f, 0f, 0f }).Within(1e-6));
    }

    [Test]
    public void Measure_BatchSize_DoesNotChangeLoss()
    {
        var model = TinyModels.WriteForward(Path.Combine(TempDir, "forward.onnx"), 1, Size, scale: 0.7f, timeScale: 0.001f);
        using var denoiser = new OnnxDenoiser(model, 1, Size);
        var plan = new FeaturizationPlan([10, 400, 800], 3, 5, MeasurementKind.Loss);
        var images = Queries(4, 3).SelectMany(q => q.Image).ToArray();
        var schedule = new NoiseSchedule(Schedule);
        var one = DiffusionLoss.Measure(denoiser, schedule, plan, images, 4, batchSize: 1);
        var many = DiffusionLoss.Measure(denoiser, schedule, plan, images, 4, batchSize: 7);
        Assert.That(many, Is.EqualTo(one).Within(1e-12));
        Assert.That(one.Distinct().Count(), Is.EqualTo(4));
    }

    [Test]
    public void Build_Always_ThrowsNamingTrainEnsemble()
    {
        var request = new MethodBuildRequest
        {
            ModelDirectory = TempDir,
            Data = new ImageDataset("x", 1, 1, Size, Size, new float[Size * Size]),
            Source = new StoreSource(TempDir, "x", "all", Size),
            OutDirectory = TempDir,
        };
        Assert.That(() => AttributionMethods.Find("ensemble").Build(request), Throws.TypeOf<UserInputException>().With.Message.Contains("train-ensemble"));
    }

    [Test]
    public void Open_WithoutMethodJson_SaysIncompleteAndRerun()
    {
        var dir = WriteEnsemble([0.5f, 0.5f, 0.5f, 0.5f], new EnsembleScoring([10], 1, 0, 4));
        File.Delete(Path.Combine(dir, StoreFiles.Method));
        Assert.That(() => EnsembleScorer.Open(dir, SessionSettings.Default), Throws.TypeOf<UserInputException>().With.Message.Contains("not complete"));
    }

    [Test]
    public void Open_MissingMember_ModelFileExceptionNamesFolder()
    {
        var dir = WriteEnsemble([0.5f, 0.5f, 0.5f, 0.5f], new EnsembleScoring([10], 1, 0, 4));
        Directory.Delete(Path.Combine(dir, "member-02"), recursive: true);
        Assert.That(() => EnsembleScorer.Open(dir, SessionSettings.Default), Throws.TypeOf<ModelFileException>().With.Message.Contains("member-02"));
    }
}
