namespace OnnxAttribution.TestSupport;

/// <summary>Seeded random values for test inputs.</summary>
public static class TestRandom
{
    /// <summary>One standard normal draw by Box–Muller from two uniform draws of <paramref name="random"/> (1 − u₁, then u₂).</summary>
    public static double Normal(Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        return Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
    }
}
