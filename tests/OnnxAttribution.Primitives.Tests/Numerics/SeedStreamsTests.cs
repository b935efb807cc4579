
namespace OnnxAttribution.Primitives.Tests.Numerics;

[TestFixture]
public sealed class SeedStreamsTests
{
    [Test]
    public void Derive_DistinctPerIndexNameAndRunSeed_StableAndNonNegative()
    {
        var seeds = new HashSet<long>();
        for (int j = 0; j < 64; j++)
        {
            for (int s = 0; s < 5; s++)
            {
                long v = SeedStreams.Derive(0, "lds subset model", j, s);
                Assert.That(v, Is.GreaterThanOrEqualTo(0));
                seeds.Add(v);
            }
        }
        Assert.That(seeds, Has.Count.EqualTo(64 * 5));
        Assert.That(SeedStreams.Derive(1, "lds subset model", 3, 2), Is.Not.EqualTo(SeedStreams.Derive(0, "lds subset model", 3, 2)));
        Assert.That(SeedStreams.Derive(0, "another stream", 3, 2), Is.Not.EqualTo(SeedStreams.Derive(0, "lds subset model", 3, 2)));
        Assert.Throws<ArgumentOutOfRangeException>(() => SeedStreams.Derive(0, "x", -1, 0));
    }
}
