using System.Text.Json;
using System.Text.RegularExpressions;

namespace OnnxAttribution.Cli.Tests;

/// <summary>The report verb: one self-contained HTML file, the same content as JSON, exit 2 naming a bad input.</summary>
public sealed partial class CliTests
{
    [Test]
    public void Report_SeedOnAVersionedStore_HtmlWithTopRowsTrustProvenanceAndJson()
    {
        var store = Path.Combine(_dir, "store");
        Assert.That(CliApp.Run(["featurize", "--model", FindShippedModel(), "--subset", "0:12", "--method", "d-trak", "--timesteps", "1", "--dim", "32",
            "--out", store]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(CliApp.Run(["finalize", "--store", store]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        // featurize and finalize each wrote a version: the report names the newest.
        string id = Core.Store.StoreHistory.TryLoad(store)!.Head!.Id!;
        var html = Path.Combine(_dir, "report.html");
        _stdout.GetStringBuilder().Clear();

        int code = CliApp.Run(["report", "--store", store, "--seed", "4", "--top", "5", "--out", html, "--json"]);

        Assert.That(code, Is.EqualTo(CliApp.Ok), _stderr.ToString());
        string page = File.ReadAllText(html);
        Assert.That(Regex.Matches(page, "<tr class=\"result\">").Count, Is.EqualTo(5));
        Assert.That(Regex.Matches(page, "src=\"data:image/png;base64,").Count, Is.EqualTo(6));
        Assert.That(Regex.IsMatch(page, "(src|href)=\"(https?:)?//"), Is.False);
        Assert.That(page, Does.Contain($"version 2 ({id})").And.Contain("trust: z, percentile").And.Contain("evidence, not proof"));
        using var json = JsonDocument.Parse(_stdout.ToString());
        var root = json.RootElement;
        string fingerprint = root.GetProperty("provenance").GetProperty("modelFingerprint").GetString()!;
        Assert.That(fingerprint, Has.Length.EqualTo(64));
        Assert.That(page, Does.Contain(fingerprint));
        Assert.That(root.GetProperty("provenance").GetProperty("command").GetString(),
            Is.EqualTo($"onnx-attribution report --store {store} --seed 4 --sampler ddim --steps 50 --top 5 --out {html}"));
        var top = root.GetProperty("top").EnumerateArray().ToList();
        Assert.That(top, Has.Count.EqualTo(5));
        Assert.That(top[0].GetProperty("percentile").GetDouble(), Is.EqualTo(100));
        Assert.That(top.Select(t => t.GetProperty("zScore").GetDouble()), Is.Ordered.Descending);
        Assert.That(root.TryGetProperty("queryImage", out _), Is.False, "no images in JSON");
    }

    [Test]
    public void Report_MissingStore_ExitsTwoNamingIt()
    {
        var missing = Path.Combine(_dir, "no-store");

        int code = CliApp.Run(["report", "--store", missing, "--seed", "1", "--out", Path.Combine(_dir, "r.html")]);

        Assert.That(code, Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain($"--store {missing}: folder not found"));
        Assert.That(File.Exists(Path.Combine(_dir, "r.html")), Is.False);
    }

    [TestCase]
    [TestCase("--seed", "1", "--image", "x.png")]
    public void Report_NoneOrBothQueries_ExitsTwoSayingWhatToGive(params string[] query)
    {
        int code = CliApp.Run(["report", "--store", _dir, .. query, "--out", Path.Combine(_dir, "r.html")]);

        Assert.That(code, Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("give exactly one query: --seed N"));
    }

    [Test]
    public void Report_SeedNotANumber_ExitsTwoNamingTheOption()
    {
        int code = CliApp.Run(["report", "--store", _dir, "--seed", "seven", "--out", Path.Combine(_dir, "r.html")]);

        Assert.That(code, Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("seed"));
    }
}
