using System.Text.Json;
using CommandLine;
using OnnxAttribution.Cli.Verbs;
using OnnxAttribution.Training.Evaluation;

namespace OnnxAttribution.Cli.Tests;

/// <summary>
/// The evaluation verbs declare their defaults in option attributes, the library in its options records: the command line
/// with nothing but the required options must give the library's own defaults, or the two would drift apart silently.
/// </summary>
public sealed class EvaluationVerbDefaultsTests
{
    private static T Parse<T>(params string[] args) where T : class =>
        new Parser(s => s.HelpWriter = null).ParseArguments<T>(args).MapResult(o => o, errors => throw new AssertionException(string.Join("; ", errors)));

    /// <summary>Every setting of an options record as JSON, without the observer (an object, not a setting).</summary>
    private static string Settings(object options)
    {
        var node = JsonSerializer.SerializeToNode(options)!.AsObject();
        node.Remove("Observer");
        return node.ToJsonString();
    }

    [Test]
    public void Lds_DefaultsOfTheVerb_AreTheLibrarys()
    {
        var fromVerb = Parse<LdsVerb>("--out", "x").ToOptions(SilentEvaluationObserver.Instance);

        Assert.That(Settings(fromVerb), Is.EqualTo(Settings(new LdsOptions { Out = "x" })));
    }

    [Test]
    public void Counterfactual_DefaultsOfTheVerb_AreTheLibrarys()
    {
        var fromVerb = Parse<CounterfactualVerb>("--out", "x", "--store", "a,b").ToOptions(SilentEvaluationObserver.Instance);

        Assert.That(Settings(fromVerb), Is.EqualTo(Settings(new CounterfactualOptions { Out = "x", Stores = ["a", "b"] })));
    }
}
