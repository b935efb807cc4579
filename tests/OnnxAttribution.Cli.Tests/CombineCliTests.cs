using System.Text.Json.Nodes;

namespace OnnxAttribution.Cli.Tests;

/// <summary><c>attribute --combine-with</c>: the standardised mean of several methods' stores. (Part of <see cref="CliTests"/>.)</summary>
public sealed partial class CliTests
{
    [Test]
    public void Attribute_CombineWith_RanksByTheStandardisedMeanOfTheStoresScores()
    {
        string Store(string method, string subset)
        {
            string store = Path.Combine(_dir, $"combine-{method}-{subset.Replace(':', '-')}");
            Assert.That(RunAfresh("featurize", "--model", FindShippedModel(), "--subset", subset, "--method", method, "--timesteps", "2", "--dim", "128",
                "--out", store), Is.EqualTo(CliApp.Ok), _stderr.ToString());
            Assert.That(RunAfresh("finalize", "--store", store), Is.EqualTo(CliApp.Ok), _stderr.ToString());
            return store;
        }
        string dtrak = Store("d-trak", "0:20"), trak = Store("trak", "0:20");
        Dictionary<long, double> Scores(params string[] extra)
        {
            Assert.That(RunAfresh(["attribute", "--seed", "5", "--steps", "3", "--top", "20", "--json", "--out", Path.Combine(_dir, "combine.png"), .. extra]),
                Is.EqualTo(CliApp.Ok), _stderr.ToString());
            return JsonNode.Parse(_stdout.ToString())!["rankings"]![0]!["top"]!.AsArray()
                .ToDictionary(r => r!["index"]!.GetValue<long>(), r => (double)r!["score"]!.GetValue<float>());
        }
        static Dictionary<long, double> Standardised(Dictionary<long, double> s)
        {
            double mean = s.Values.Average(), deviation = Math.Sqrt(s.Values.Sum(v => (v - mean) * (v - mean)) / s.Count);
            return s.ToDictionary(p => p.Key, p => (p.Value - mean) / deviation);
        }
        var a = Standardised(Scores("--store", dtrak));
        var b = Standardised(Scores("--store", trak));
        var combined = Scores("--store", dtrak, "--combine-with", trak);
        Assert.That(JsonNode.Parse(_stdout.ToString())!["method"]!.GetValue<string>(), Is.EqualTo("d-trak+trak"));
        var expected = a.Keys.ToDictionary(r => r, r => (a[r] + b[r]) / 2);
        Assert.That(combined.Keys, Is.EqualTo(expected.OrderByDescending(p => p.Value).Select(p => p.Key)), "ranked by the mean");
        Assert.That(combined.Keys.Select(r => combined[r]), Is.EqualTo(combined.Keys.Select(r => expected[r])).Within(1e-4));

        string other = Store("trak", "0:10");
        Assert.That(RunAfresh("attribute", "--store", dtrak, "--combine-with", other, "--seed", "5", "--steps", "3", "--out", Path.Combine(_dir, "x.png")),
            Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain($"--combine-with {other}"));
    }
}
