using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests;

/// <summary>How a scorer's best rows are cut to a query's top (every ranking passes here): a non-finite score is an error, never an answer.</summary>
[TestFixture]
public sealed class RankedRowsTests
{
    private static readonly AttributionQuery Query = new("images[0]", new float[4]);

    [Test]
    public void Ranked_FiniteScores_TheFirstTopRowsInOrder()
    {
        var rows = Attributor.Ranked("s", Query, new TopKResult([5, 2, 9], [0.5f, 0.25f, -1f]), 2);
        Assert.That(rows, Is.EqualTo(new[] { new RankedRow(1, 5, 0.5f), new RankedRow(2, 2, 0.25f) }));
    }

    [TestCase(float.NaN, "NaN")]
    [TestCase(float.PositiveInfinity, "Infinity")]
    [TestCase(float.NegativeInfinity, "-Infinity")]
    public void Ranked_NonFiniteScore_StoreFormatExceptionNamingStoreQueryAndRow(float score, string shown)
    {
        Assert.That(
            () => Attributor.Ranked("small", Query, new TopKResult([5, 2], [0.5f, score]), 2),
            Throws.TypeOf<StoreFormatException>().With.Message.Contains("store 'small'").And.Message.Contains("'images[0]'")
                .And.Message.Contains($"scored {shown} at row 2"));
    }

    [Test]
    public void Ranked_NonFiniteScoreBeyondTheTop_NotLookedAt()
    {
        var rows = Attributor.Ranked("s", Query, new TopKResult([5, 2], [0.5f, float.NaN]), 1);
        Assert.That(rows, Is.EqualTo(new[] { new RankedRow(1, 5, 0.5f) }));
    }
}
