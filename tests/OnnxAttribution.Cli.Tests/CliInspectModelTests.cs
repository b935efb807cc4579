namespace OnnxAttribution.Cli.Tests;

/// <summary>inspect --model: the operation count of a model folder's graphs.</summary>
public sealed partial class CliTests
{
    [Test]
    public void InspectModel_ShippedModel_CountsForwardAndGradientGraphs()
    {
        Assert.That(CliApp.Run(["inspect", "--model", FindShippedModel(), "--json"]), Is.EqualTo(CliApp.Ok), _stderr.ToString());

        var json = System.Text.Json.Nodes.JsonNode.Parse(_stdout.ToString())!;
        double forward = (double)json["forward"]!["multiplyAddFlops"]!;
        double dense = (double)json["vjpDense"]!["multiplyAddFlops"]!;
        double factored = (double)json["vjpFactored"]!["multiplyAddFlops"]!;
        // The shipped U-Net: ≈ 67 MFLOP forward; the gradient graph adds the input gradients (≈ the forward again) and,
        // dense, the per-example weight gradients (≈ the forward once more).
        Assert.That(forward, Is.InRange(60e6, 75e6));
        Assert.That(dense, Is.InRange(2.5 * forward, 3.5 * forward));
        Assert.That(factored, Is.GreaterThan(forward).And.LessThan(dense));
        Assert.That((long)json["parameters"]!, Is.EqualTo(283_105));
    }

    [TestCase(false, false)]
    [TestCase(true, true)]
    public void Inspect_NeitherOrBothOfStoreAndModel_ExitsTwo(bool store, bool model)
    {
        var args = new List<string> { "inspect" };
        if (store)
        {
            args.AddRange(["--store", _dir]);
        }
        if (model)
        {
            args.AddRange(["--model", FindShippedModel()]);
        }
        Assert.That(CliApp.Run([.. args]), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("one of --store or --model"));
    }
}
