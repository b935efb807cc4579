using OnnxAttribution.Core.Evaluation;

namespace OnnxAttribution.Core.Tests.Evaluation;

[TestFixture]
public sealed class NoiseCeilingTests
{
    [Test]
    public void SpearmanBrown_HandComputedValues()
    {
        Assert.That(NoiseCeiling.SpearmanBrown(0.5, 2), Is.EqualTo(1.0 / 1.5).Within(1e-12));
        Assert.That(NoiseCeiling.SpearmanBrown(0.5, 3), Is.EqualTo(1.5 / 2.0).Within(1e-12));
        Assert.That(NoiseCeiling.SpearmanBrown(-0.2, 2), Is.EqualTo(-0.4 / 0.8).Within(1e-12));
        Assert.That(NoiseCeiling.SpearmanBrown(0.3, 1), Is.EqualTo(0.3).Within(1e-12), "a factor of 1 changes nothing");
        Assert.That(NoiseCeiling.SpearmanBrown(-0.9, 3), Is.EqualTo(-1), "clamped where 1 + (n − 1)ρ ≤ 0");
        Assert.That(NoiseCeiling.SpearmanBrown(double.NaN, 2), Is.NaN);
    }

    [Test]
    public void Splits_AllDistinctHalves_OddSeedsLeaveOneOut()
    {
        static string Show(IReadOnlyList<SeedSplit> splits) => string.Join(" ", splits.Select(s => string.Concat(s.A) + "|" + string.Concat(s.B)));
        Assert.That(Show(NoiseCeiling.Splits(2)), Is.EqualTo("0|1"));
        Assert.That(Show(NoiseCeiling.Splits(3)), Is.EqualTo("0|1 0|2 1|2"));
        Assert.That(Show(NoiseCeiling.Splits(4)), Is.EqualTo("01|23 02|13 03|12"));
        Assert.That(NoiseCeiling.Splits(6), Has.Count.EqualTo(10), "C(6,3)/2");
        var sampled = NoiseCeiling.Splits(10, maxSplits: 7, seed: 3);
        Assert.That(sampled, Has.Count.EqualTo(7));
        Assert.That(sampled.All(s => s.A.Length == 5 && !s.A.Intersect(s.B).Any()), Is.True);
        Assert.Throws<ArgumentOutOfRangeException>(() => NoiseCeiling.Splits(1));
    }

    [Test]
    public void Measure_TwoSeeds_HandComputedCeiling()
    {
        // One query, 4 subsets. Seed 0 ranks the subsets 1 2 3 4, seed 1 ranks them 1 2 4 3:
        // ρ_half = 1 − 6·Σd²/(n(n²−1)) = 1 − 6·2/60 = 0.8; ρ_S = 2·0.8/1.8; ceiling √ρ_S.
        var result = NoiseCeiling.Measure([[1, 2, 3, 4], [1, 2, 4, 3]], models: 4, queries: 1);
        Assert.That(result.HalfCorrelation[0], Is.EqualTo(0.8).Within(1e-12));
        Assert.That(result.Reliability[0], Is.EqualTo(1.6 / 1.8).Within(1e-12));
        Assert.That(result.Ceiling[0], Is.EqualTo(Math.Sqrt(1.6 / 1.8)).Within(1e-12));
        Assert.That(result.Mean.Mean, Is.EqualTo(Math.Sqrt(1.6 / 1.8)).Within(1e-12));
        Assert.That((result.Splits, result.HalfSize), Is.EqualTo((1, 1)));
    }

    [Test]
    public void Measure_ThreeSeeds_AveragesTheThreeSplits_FactorThree()
    {
        // Seeds 0 and 1 agree (ρ = 1); seed 2 swaps the last two subsets (ρ = 0.8 against each):
        // ρ_half = (1 + 0.8 + 0.8)/3; Spearman–Brown with n = 3/1.
        var result = NoiseCeiling.Measure([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 4, 3]], models: 4, queries: 1);
        double half = 2.6 / 3;
        Assert.That(result.HalfCorrelation[0], Is.EqualTo(half).Within(1e-12));
        Assert.That(result.Reliability[0], Is.EqualTo(3 * half / (1 + (2 * half))).Within(1e-12));
        Assert.That(result.Splits, Is.EqualTo(3));
    }

    [Test]
    public void Measure_QueriesAreColumns_DisagreeingHalvesGiveCeilingZero()
    {
        // Two queries (model-major matrices): query 0 agrees perfectly, query 1 is reversed between the seeds.
        double[] seed0 = [1, 10, 2, 20, 3, 30, 4, 40];
        double[] seed1 = [1, 40, 2, 30, 3, 20, 4, 10];
        var result = NoiseCeiling.Measure([seed0, seed1], models: 4, queries: 2);
        Assert.That(result.HalfCorrelation, Is.EqualTo(new[] { 1.0, -1.0 }).Within(1e-12));
        Assert.That(result.Ceiling, Is.EqualTo(new[] { 1.0, 0.0 }).Within(1e-12));
        Assert.That(result.Mean.Mean, Is.EqualTo(0.5).Within(1e-12));
        Assert.Throws<ArgumentException>(() => NoiseCeiling.Measure([seed0], 4, 2));
    }

    [Test]
    public void MeanOverSeeds_ElementwiseMean()
    {
        Assert.That(NoiseCeiling.MeanOverSeeds([[1, 2], [3, 6]]), Is.EqualTo(new[] { 2.0, 4.0 }));
    }
}
