using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;

namespace OnnxAttribution.Core.Tests.Attribution;

[TestFixture]
public sealed class MeasurementTests
{
    [TestCase(MeasurementKind.Loss)]
    [TestCase(MeasurementKind.Square)]
    [TestCase(MeasurementKind.Mean)]
    public void Cotangent_IsGradientOfValue(MeasurementKind kind)
    {
        var rng = new Random(4);
        int d = 12;
        var eps = Enumerable.Range(0, d).Select(_ => (float)rng.NextDouble()).ToArray();
        var noise = Enumerable.Range(0, d).Select(_ => (float)rng.NextDouble()).ToArray();
        var cot = new float[d];
        Measurement.Cotangent(kind, eps, noise, d, cot);
        for (int i = 0; i < d; i++)
        {
            var plus = (float[])eps.Clone();
            var minus = (float[])eps.Clone();
            plus[i] += 1e-3f;
            minus[i] -= 1e-3f;
            double fd = (Measurement.Value(kind, plus, noise) - Measurement.Value(kind, minus, noise)) / (plus[i] - minus[i]);
            Assert.That(cot[i], Is.EqualTo(fd).Within(1e-4));
        }
    }

    [Test]
    public void Value_Mean_IsMeanOfOutput()
    {
        Assert.That(Measurement.Value(MeasurementKind.Mean, [1f, -2f, 4f, 1f], []), Is.EqualTo(1.0).Within(1e-12));
    }

    [Test]
    public void StoreName_EveryKind_RoundTrips()
    {
        foreach (var kind in Enum.GetValues<MeasurementKind>())
        {
            Assert.That(Measurement.FromStoreName(Measurement.StoreName(kind)), Is.EqualTo(kind));
        }
        Assert.That(Measurement.StoreName(MeasurementKind.Loss), Is.EqualTo("diffusion-loss"), "names in existing stores never change");
        Assert.That(Measurement.StoreName(MeasurementKind.Square), Is.EqualTo("squared-output-norm"));
        Assert.That(() => Measurement.FromStoreName("cube"), Throws.TypeOf<AttributionException>().With.Message.Contains("mean-output"));
    }

    [Test]
    public void Meta_PairNormalisation_RecordedOnlyWhenOn_AndReadBack()
    {
        FeaturizeOptions Options(bool normalize) => new()
        {
            ModelDirectory = "m",
            Data = new ImageDataset("tiny", 2, 1, 2, 2, new float[8]),
            Plan = new FeaturizationPlan([0, 500], 1, 3, MeasurementKind.Mean) { NormalizePairs = normalize },
            Projection = new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, 16, 2),
            OutDirectory = "out",
        };
        var off = TrakEngine.Meta(Options(false), "fingerprint", 16);
        var on = TrakEngine.Meta(Options(true), "fingerprint", 16);
        Assert.That(off.Settings, Is.Empty, "stores made without the option keep their meta.json");
        Assert.That(on.Settings[TrakEngine.PairNormalizationSetting], Is.EqualTo("l2"));
        Assert.That(on.DescribeDifferences(off), Has.Count.EqualTo(1));
        Assert.That(TrakScorer.PlanOf(on).NormalizePairs, Is.True);
        Assert.That(TrakScorer.PlanOf(off).NormalizePairs, Is.False);
        Assert.That(TrakScorer.PlanOf(on).Measurement, Is.EqualTo(MeasurementKind.Mean));
    }

    [Test]
    public void Evenly_TenOfThousand_StartsAtZero()
    {
        Assert.That(FeaturizationPlan.Evenly(1000, 10), Is.EqualTo(new long[] { 0, 100, 200, 300, 400, 500, 600, 700, 800, 900 }));
    }

    [Test]
    public void Noise_SamePairSameDraw_DifferentPairsDiffer()
    {
        var plan = new FeaturizationPlan([0, 500], 2, 7, MeasurementKind.Loss);
        var a = new float[8];
        var b = new float[8];
        var c = new float[8];
        plan.Noise(1, 1, a);
        plan.Noise(1, 1, b);
        plan.Noise(1, 0, c);
        Assert.That(b, Is.EqualTo(a));
        Assert.That(c, Is.Not.EqualTo(a));
    }
}

[TestFixture]
public sealed class RankCorrelationTests
{
    [Test]
    public void Spearman_MonotoneTransform_IsOne()
    {
        double[] a = [1, 5, 2, 8, 3];
        Assert.That(RankCorrelation.Spearman(a, a.Select(x => Math.Exp(x)).ToArray()), Is.EqualTo(1).Within(1e-12));
        Assert.That(RankCorrelation.Spearman(a, a.Select(x => -x).ToArray()), Is.EqualTo(-1).Within(1e-12));
    }

    [Test]
    public void Ranks_Ties_ShareMeanRank()
    {
        Assert.That(RankCorrelation.Ranks([10, 20, 10, 30]), Is.EqualTo(new[] { 1.5, 3, 1.5, 4 }));
    }
}
