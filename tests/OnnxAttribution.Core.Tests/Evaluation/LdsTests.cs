using OnnxAttribution.Core.Evaluation;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Tests.Evaluation;

[TestFixture]
public sealed class LdsTests
{
    [Test]
    public void DrawSubsets_SizesDistinctSortedAndIndependentOfCount()
    {
        var ten = Lds.DrawSubsets(100, 10, 0.5, 7);
        var three = Lds.DrawSubsets(100, 3, 0.5, 7);
        Assert.That(ten, Has.Length.EqualTo(10));
        foreach (var s in ten)
        {
            Assert.That(s, Has.Length.EqualTo(50));
            Assert.That(s, Is.Ordered.And.Unique);
            Assert.That(s.All(i => i >= 0 && i < 100), Is.True);
        }
        Assert.That(three[2], Is.EqualTo(ten[2]), "subset j depends only on the seed and j");
        Assert.That(ten[0], Is.Not.EqualTo(ten[1]));
        Assert.That(Lds.DrawSubsets(100, 1, 0.5, 8)[0], Is.Not.EqualTo(ten[0]));
    }

    [Test]
    public void DrawSubsets_EveryRowAboutHalfTheTime()
    {
        var subsets = Lds.DrawSubsets(40, 400, 0.5, 1);
        var counts = new int[40];
        foreach (var s in subsets)
        {
            foreach (var i in s)
            {
                counts[i]++;
            }
        }
        Assert.That(counts.Min(), Is.GreaterThan(150));
        Assert.That(counts.Max(), Is.LessThan(250));
    }

    [Test]
    public void DrawSubsets_AlphaOutsideOpenInterval_Refused()
    {
        Assert.That(Assert.Throws<SettingException>(() => Lds.DrawSubsets(10, 2, 1.0, 0))!.Setting, Is.EqualTo("Alpha"));
        Assert.Throws<SettingException>(() => Lds.DrawSubsets(10, 2, 0, 0));
    }

    [Test]
    public void PerfectLinearDatamodel_LdsIsOne_AndNegatedIsMinusOne()
    {
        // Measured loss = −Σ_{i∈S} τᵢ + constant: the scores predict it exactly.
        const int n = 30, models = 12, queries = 3;
        var subsets = Lds.DrawSubsets(n, models, 0.5, 3);
        var rng = new Random(5);
        var scores = Enumerable.Range(0, queries * n).Select(_ => (float)rng.NextDouble()).ToArray();
        var measured = new double[models * queries];
        for (int j = 0; j < models; j++)
        {
            for (int q = 0; q < queries; q++)
            {
                measured[j * queries + q] = 2.0 - subsets[j].Sum(i => (double)scores[q * n + i]);
            }
        }
        var predicted = Lds.Predict(scores, queries, n, subsets);
        Assert.That(Lds.PerQuery(predicted, measured, queries, models), Is.All.EqualTo(1.0).Within(1e-12));
        var negated = scores.Select(s => -s).ToArray();
        Assert.That(Lds.PerQuery(Lds.Predict(negated, queries, n, subsets), measured, queries, models), Is.All.EqualTo(-1.0).Within(1e-12));
    }

    [Test]
    public void Predict_SumsTheSubsetsScores()
    {
        var predicted = Lds.Predict([1f, 2f, 4f, 8f, 16f, 32f], 2, 3, [[0, 2], [1]]);
        Assert.That(predicted, Is.EqualTo(new double[] { 5, 2, 40, 16 }));
    }

    [Test]
    public void Bootstrap_IntervalContainsMean_SkipsNaN_AndNarrowsWithMoreData()
    {
        var rng = new Random(2);
        var few = Enumerable.Range(0, 10).Select(_ => rng.NextDouble()).Append(double.NaN).ToArray();
        var many = Enumerable.Range(0, 1000).Select(_ => rng.NextDouble()).ToArray();
        var a = Lds.Bootstrap(few, 1000, 1);
        var b = Lds.Bootstrap(many, 1000, 1);
        Assert.That(a.Count, Is.EqualTo(10));
        Assert.That(a.Mean, Is.EqualTo(few.Take(10).Average()).Within(1e-12));
        Assert.That(a.Low, Is.LessThan(a.Mean));
        Assert.That(a.High, Is.GreaterThan(a.Mean));
        Assert.That(b.High - b.Low, Is.LessThan((a.High - a.Low) / 3));
        Assert.That(Lds.Bootstrap(few, 1000, 1), Is.EqualTo(a), "seeded");
        Assert.That(double.IsNaN(Lds.Bootstrap([double.NaN], 10, 0).Mean), Is.True);
    }

    [Test]
    public void PermutationTest_PerfectDatamodel_SmallP_RandomScores_NotSignificant()
    {
        const int n = 40, models = 16, queries = 8;
        var subsets = Lds.DrawSubsets(n, models, 0.5, 4);
        var rng = new Random(9);
        var scores = Enumerable.Range(0, queries * n).Select(_ => (float)rng.NextDouble()).ToArray();
        var measured = new double[models * queries];
        for (int j = 0; j < models; j++)
        {
            for (int q = 0; q < queries; q++)
            {
                measured[j * queries + q] = -subsets[j].Sum(i => (double)scores[q * n + i]);
            }
        }
        var perfect = Lds.PermutationTest(Lds.Predict(scores, queries, n, subsets), measured, queries, models, 200, 1);
        Assert.That(perfect.P, Is.EqualTo(1.0 / 201).Within(1e-12), "no permutation reaches LDS 1");
        Assert.That(perfect.NullHigh, Is.LessThan(0.5));
        Assert.That(perfect.NullLow, Is.LessThan(0).And.GreaterThan(-0.5));

        var unrelated = Enumerable.Range(0, queries * n).Select(_ => (float)rng.NextDouble()).ToArray();
        var none = Lds.PermutationTest(Lds.Predict(unrelated, queries, n, subsets), measured, queries, models, 200, 1);
        Assert.That(none.P, Is.GreaterThan(0.01));
        Assert.That(Lds.PermutationTest(Lds.Predict(unrelated, queries, n, subsets), measured, queries, models, 200, 1), Is.EqualTo(none), "seeded");
    }

    [Test]
    public void PermutationTest_OneRankingForEveryQuery_NullWiderThanIndependentScores()
    {
        // Some models are better at every query (a shared quality g_j) and the scores are shared by every query too: the
        // per-query LDS values then move together, and the null must widen with them.
        const int n = 40, models = 16, queries = 20;
        var subsets = Lds.DrawSubsets(n, models, 0.5, 5);
        var rng = new Random(3);
        var quality = Enumerable.Range(0, models).Select(_ => rng.NextDouble()).ToArray();
        var measured = Enumerable.Range(0, models * queries).Select(k => quality[k / queries] + (0.5 * rng.NextDouble())).ToArray();
        var independent = Enumerable.Range(0, queries * n).Select(_ => (float)rng.NextDouble()).ToArray();
        var one = Enumerable.Range(0, n).Select(_ => (float)rng.NextDouble()).ToArray();
        var shared = Enumerable.Range(0, queries).SelectMany(_ => one).ToArray();
        var a = Lds.PermutationTest(Lds.Predict(independent, queries, n, subsets), measured, queries, models, 400, 2);
        var b = Lds.PermutationTest(Lds.Predict(shared, queries, n, subsets), measured, queries, models, 400, 2);
        Assert.That(b.NullHigh - b.NullLow, Is.GreaterThan(1.5 * (a.NullHigh - a.NullLow)));
    }

    [Test]
    public void RemoveQueryMean_SubtractsEachRowsMeanOverQueries()
    {
        // 2 queries × 3 rows: row means 2, 3, -1.
        var centred = Lds.RemoveQueryMean([1f, 5f, 0f, 3f, 1f, -2f], 2, 3);
        Assert.That(centred, Is.EqualTo(new[] { -1f, 2f, 1f, 1f, -2f, -1f }));
        Assert.Throws<ArgumentException>(() => Lds.RemoveQueryMean([1f], 2, 3));
    }

    [Test]
    public void QueryAgreement_SameRankingIsOne_ReversedIsMinusOne_OneQueryIsNaN()
    {
        Assert.That(Lds.QueryAgreement([1f, 2f, 3f, 10f, 20f, 30f], 2, 3), Is.EqualTo(1).Within(1e-12));
        Assert.That(Lds.QueryAgreement([1f, 2f, 3f, 3f, 2f, 1f], 2, 3), Is.EqualTo(-1).Within(1e-12));
        Assert.That(Lds.QueryAgreement([1f, 2f, 3f, 1f, 2f, 3f, 3f, 2f, 1f], 3, 3), Is.EqualTo((1.0 - 1 - 1) / 3).Within(1e-12));
        Assert.That(double.IsNaN(Lds.QueryAgreement([1f, 2f, 3f], 1, 3)), Is.True);
    }
}
