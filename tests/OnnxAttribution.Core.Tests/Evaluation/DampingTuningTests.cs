using OnnxAttribution.Core.Evaluation;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Tests.Evaluation;

[TestFixture]
public sealed class DampingTuningTests
{
    [Test]
    public void Tune_BestOnTestDiffers_ChosenOnValidation_TestEvaluatedOnceAtIt()
    {
        // Validation peaks at 1e-4, test would peak at 1e-1: the choice must follow validation only.
        var validation = new Dictionary<double, double> { [1e-6] = 0.10, [1e-5] = 0.12, [1e-4] = 0.20, [1e-3] = 0.15, [1e-2] = 0.05, [1e-1] = 0.01 };
        var test = new Dictionary<double, double> { [1e-6] = 0.0, [1e-5] = 0.0, [1e-4] = 0.11, [1e-3] = 0.12, [1e-2] = 0.2, [1e-1] = 0.3 };
        var testCalls = new List<double>();
        var result = DampingTuning.Tune(DampingTuning.Decades, l => validation[l], l =>
        {
            testCalls.Add(l);
            return test[l];
        });
        Assert.That(result.Chosen, Is.EqualTo(1e-4));
        Assert.That(testCalls, Is.EqualTo(new[] { 1e-4 }), "the test queries are evaluated once, at the chosen λ");
        Assert.That(result.Test, Is.EqualTo(0.11));
        Assert.That(result.Sweep.Select(p => p.Damping), Is.EqualTo(DampingTuning.Decades));
    }

    [Test]
    public void Choose_SkipsNaN_FirstOfEquals_AllNaNRefused()
    {
        Assert.That(DampingTuning.Choose([new(1e-3, double.NaN), new(1e-2, 0.4), new(1e-1, 0.4)]), Is.EqualTo(1e-2));
        Assert.Throws<AttributionException>(() => DampingTuning.Choose([new(1e-3, double.NaN)]));
    }

    [Test]
    public void Decades_OneEMinus6ToOneEMinus1()
    {
        Assert.That(DampingTuning.Decades, Is.EqualTo(new[] { 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1 }));
    }
}
