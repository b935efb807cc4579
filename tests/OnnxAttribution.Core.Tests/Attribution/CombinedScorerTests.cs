using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Tests.Attribution;

/// <summary>The standardised mean of several methods' scores (<see cref="CombinedScorer"/>).</summary>
[TestFixture]
public sealed class CombinedScorerTests
{
    private sealed class FixedScorer(string method, float[] scores, long rows) : IAttributionScorer
    {
        public string Method { get; } = method;

        public long Rows { get; } = rows;

        public bool Disposed { get; private set; }

        public float[] Scores(IReadOnlyList<AttributionQuery> queries, CancellationToken cancel = default) => scores;

        public void Dispose() => Disposed = true;
    }

    private static readonly List<AttributionQuery> TwoQueries = [new("a", new float[4]), new("b", new float[4])];

    [Test]
    public void Scores_AreTheMeanOfEachMethodsStandardisedScores()
    {
        // Query a: method 1 scores 1, 2, 3 (mean 2, deviation √(2/3)); method 2 scores 10, 40, 10 (mean 20, deviation √200).
        // Query b: method 1 scores all equal (it adds nothing); method 2 scores 0, 0, 3.
        var one = new FixedScorer("m1", [1, 2, 3, 5, 5, 5], 3);
        var two = new FixedScorer("m2", [10, 40, 10, 0, 0, 3], 3);
        using var combined = new CombinedScorer([one, two]);
        var scores = combined.Scores(TwoQueries);
        double d1 = Math.Sqrt(2.0 / 3), d2 = Math.Sqrt(200), d3 = Math.Sqrt(2.0);
        double[] expected =
        [
            0.5 * ((-1 / d1) + (-10 / d2)), 0.5 * ((0 / d1) + (20 / d2)), 0.5 * ((1 / d1) + (-10 / d2)),
            0.5 * (-1 / d3), 0.5 * (-1 / d3), 0.5 * (2 / d3),
        ];
        Assert.That(scores.Select(v => (double)v), Is.EqualTo(expected).Within(1e-6));
        Assert.That(combined.Method, Is.EqualTo("m1+m2"));
        Assert.That(combined.Rows, Is.EqualTo(3));
        // Scaling one method's scores changes nothing: each is standardised first.
        using var scaled = new CombinedScorer([new FixedScorer("m1", [100, 200, 300, 5, 5, 5], 3), new FixedScorer("m2", [10, 40, 10, 0, 0, 3], 3)]);
        Assert.That(scaled.Scores(TwoQueries).Select(v => (double)v), Is.EqualTo(expected).Within(1e-6));
        combined.Dispose();
        Assert.That(one.Disposed && two.Disposed, Is.True, "the combination owns its scorers");
    }

    [Test]
    public void Constructor_OneScorerOrOtherRows_Refused()
    {
        Assert.That(() => new CombinedScorer([new FixedScorer("m1", [1], 1)]), Throws.TypeOf<UserInputException>().With.Message.Contains("two or more"));
        Assert.That(() => new CombinedScorer([new FixedScorer("m1", [1], 1), new FixedScorer("m2", [1, 2], 2)]),
            Throws.TypeOf<UserInputException>().With.Message.Contains("m2's store scores 2 rows and m1's 1"));
    }
}
