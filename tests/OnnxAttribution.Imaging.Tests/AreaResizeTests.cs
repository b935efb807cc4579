namespace OnnxAttribution.Imaging.Tests;

public sealed class AreaResizeTests
{
    [Test]
    public void AxisWeights_28To16_AreExactOverlapFractions()
    {
        // Output 0 covers source [0, 1.75): pixel 0 fully, pixel 1 for 0.75, so weights 1/1.75 and 0.75/1.75.
        var (start, w) = AreaResize.AxisWeights(28, 16, 0);
        Assert.That(start, Is.EqualTo(0));
        Assert.That(w, Is.EqualTo(new[] { 1 / 1.75, 0.75 / 1.75 }).Within(1e-15));
        // Output 1 covers [1.75, 3.5): 0.25 of pixel 1, pixel 2, 0.5 of pixel 3.
        (start, w) = AreaResize.AxisWeights(28, 16, 1);
        Assert.That(start, Is.EqualTo(1));
        Assert.That(w, Is.EqualTo(new[] { 0.25 / 1.75, 1 / 1.75, 0.5 / 1.75 }).Within(1e-15));
    }

    [Test]
    public void AxisWeights_EveryOutput_SumToOneAndCoverSourceOnce()
    {
        foreach (var (src, dst) in new[] { (28, 16), (28, 14), (16, 28), (7, 3), (5, 5) })
        {
            var coverage = new double[src];
            for (int o = 0; o < dst; o++)
            {
                var (start, w) = AreaResize.AxisWeights(src, dst, o);
                Assert.That(w.Sum(), Is.EqualTo(1).Within(1e-12), $"{src}→{dst} output {o}");
                for (int k = 0; k < w.Length; k++)
                {
                    coverage[start + k] += w[k] * src / dst;
                }
            }
            Assert.That(coverage, Is.All.EqualTo(1).Within(1e-12), $"{src}→{dst}");
        }
    }

    [Test]
    public void Apply_IntegerFactor_IsBlockMean()
    {
        var src = Enumerable.Range(0, 16).Select(i => (float)i).ToArray(); // 4×4
        var dst = new float[4];
        new AreaResize(4, 4, 2, 2).Apply(src, 1, dst);
        Assert.That(dst, Is.EqualTo(new[] { 2.5f, 4.5f, 10.5f, 12.5f }).Within(1e-6));
    }

    [Test]
    public void Apply_ConstantImage_StaysConstant()
    {
        var src = Enumerable.Repeat(0.3f, 3 * 28 * 28).ToArray();
        var dst = new float[3 * 16 * 16];
        new AreaResize(28, 28, 16, 16).Apply(src, 3, dst);
        Assert.That(dst, Is.All.EqualTo(0.3f).Within(1e-6));
    }

    [Test]
    public void Apply_28To16_PreservesMeanAndMatchesDirectAreaIntegral()
    {
        var rng = new Random(5);
        var src = Enumerable.Range(0, 28 * 28).Select(_ => (float)rng.NextDouble()).ToArray();
        var dst = new float[16 * 16];
        new AreaResize(28, 28, 16, 16).Apply(src, 1, dst);
        Assert.That(dst.Average(), Is.EqualTo(src.Average()).Within(1e-5));
        // Output (3, 5) by a direct 2-D area integral over [3·1.75, 4·1.75) × [5·1.75, 6·1.75).
        double sum = 0;
        for (int y = 0; y < 28; y++)
        {
            for (int x = 0; x < 28; x++)
            {
                double oy = Math.Max(0, Math.Min(y + 1, 7.0) - Math.Max(y, 5.25));
                double ox = Math.Max(0, Math.Min(x + 1, 10.5) - Math.Max(x, 8.75));
                sum += oy * ox * src[y * 28 + x];
            }
        }
        Assert.That(dst[3 * 16 + 5], Is.EqualTo(sum / (1.75 * 1.75)).Within(1e-6));
    }

    [Test]
    public void Apply_WrongLength_Throws()
    {
        Assert.That(() => new AreaResize(4, 4, 2, 2).Apply(new float[15], 1, new float[4]), Throws.ArgumentException);
    }
}
