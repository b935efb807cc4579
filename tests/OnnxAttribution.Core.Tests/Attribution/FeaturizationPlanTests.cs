using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Tests.Attribution;

public sealed class FeaturizationPlanTests
{
    private static readonly FeaturizationPlan Ten = new(FeaturizationPlan.Evenly(1000, 10), 2, 7, MeasurementKind.Square);

    [TestCase(1, new long[] { 500 }, new[] { 5 })]
    [TestCase(2, new long[] { 200, 700 }, new[] { 2, 7 })]
    [TestCase(5, new long[] { 100, 300, 500, 700, 900 }, new[] { 1, 3, 5, 7, 9 })]
    [TestCase(3, new long[] { 100, 500, 800 }, new[] { 1, 5, 8 })]
    public void ForQueries_SpreadsQOfTheKTimestepsEvenly(int count, long[] timesteps, int[] positions)
    {
        var plan = Ten.ForQueries(count);

        Assert.That(plan.Timesteps, Is.EqualTo(timesteps));
        Assert.That(plan.TimestepPositions, Is.EqualTo(positions));
        Assert.That(plan.Pairs, Is.EqualTo(count * 2));
        Assert.That((plan.NoiseDraws, plan.NoiseSeed, plan.Measurement), Is.EqualTo((Ten.NoiseDraws, Ten.NoiseSeed, Ten.Measurement)));
    }

    /// <summary>A query at fewer timesteps sees, at each of them, the noise the store's rows saw there (not that of its own position).</summary>
    [Test]
    public void ForQueries_KeepsEachTimestepsOwnNoise()
    {
        var plan = Ten.ForQueries(2);
        var expected = new float[256];
        var actual = new float[256];
        var ownPosition = new float[256];
        for (int i = 0; i < 2; i++)
        {
            for (int draw = 0; draw < 2; draw++)
            {
                Ten.Noise(plan.TimestepPositions![i], draw, expected);
                plan.Noise(i, draw, actual);
                Ten.Noise(i, draw, ownPosition);
                Assert.That(actual, Is.EqualTo(expected));
                Assert.That(actual, Is.Not.EqualTo(ownPosition));
            }
        }
    }

    [Test]
    public void ForQueries_ZeroOrAllK_IsThePlanItself()
    {
        Assert.That(Ten.ForQueries(0), Is.SameAs(Ten));
        Assert.That(Ten.ForQueries(10), Is.SameAs(Ten));
    }

    [TestCase(11)]
    [TestCase(-1)]
    public void ForQueries_OutsideOneToK_SaysWhatTheStoreHas(int count)
    {
        Assert.That(() => Ten.ForQueries(count), Throws.TypeOf<UserInputException>().With.Message.Contains("featurized at 10 timesteps; choose 1 to 10"));
    }

    [Test]
    public void ForQueries_OneRandomTimestepPlan_IsRefused()
    {
        var random = FeaturizationPlan.OneRandomTimestep(1, 0, MeasurementKind.Loss);
        Assert.That(() => random.ForQueries(1), Throws.TypeOf<UserInputException>().With.Message.Contains("fixed timesteps"));
    }
}
