using System.Text.Json;
using System.Text.RegularExpressions;

namespace OnnxAttribution.Cli.Tests;

/// <summary>The report verb: one self-contained HTML file, the same content as JSON, exit 2 naming a bad input.</summary>
public sealed partial class CliTests
{
    /// <summary>A finalized store of <paramref name="method"/> on 12 rows of the shipped model (1 timestep, k = 32) in _dir/<paramref name="name"/>.</summary>
    private string ReportStore(string name, string method)
    {
        var store = Path.Combine(_dir, name);
        Assert.That(CliApp.Run(["featurize", "--model", FindShippedModel(), "--subset", "0:12", "--method", method, "--timesteps", "1", "--dim", "32",
            "--out", store]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(CliApp.Run(["finalize", "--store", store]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        return store;
    }

    [Test]
    public void Report_SeedOnAVersionedStore_HtmlWithTopRowsTrustProvenanceAndJson()
    {
        var store = ReportStore("store", "d-trak");
        // featurize and finalize each wrote a version: the report names the newest.
        string id = OnnxAttribution.Store.StoreHistory.TryLoad(store)!.Head!.Id!;
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
    public void Report_CompareWithAnotherMethodsStore_ShowsItsTopRowsAndTheOverlap()
    {
        var dtrak = ReportStore("d-trak", "d-trak");
        var trak = ReportStore("trak", "trak");
        HashSet<long> Top4(string store)
        {
            _stdout.GetStringBuilder().Clear();
            Assert.That(CliApp.Run(["attribute", "--store", store, "--seed", "4", "--top", "4", "--json"]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
            using var answer = JsonDocument.Parse(_stdout.ToString());
            return [.. answer.RootElement.GetProperty("rankings")[0].GetProperty("top").EnumerateArray().Select(r => r.GetProperty("index").GetInt64())];
        }
        int expected = Top4(trak).Intersect(Top4(dtrak)).Count();
        var html = Path.Combine(_dir, "report.html");
        _stdout.GetStringBuilder().Clear();

        int code = CliApp.Run(["report", "--store", dtrak, "--seed", "4", "--top", "4", "--out", html, "--json", "--compare", trak + "," + dtrak]);

        Assert.That(code, Is.EqualTo(CliApp.Ok), _stderr.ToString());
        using var json = JsonDocument.Parse(_stdout.ToString());
        var agreement = json.RootElement.GetProperty("agreement").EnumerateArray().ToList();
        Assert.That(agreement.Select(a => a.GetProperty("method").GetString()), Is.EqualTo(new[] { "trak", "d-trak" }));
        Assert.That(agreement[0].GetProperty("overlap").GetInt32(), Is.EqualTo(expected), "the rows trak and d-trak both rank in their top 4");
        Assert.That(agreement[1].GetProperty("overlap").GetInt32(), Is.EqualTo(4), "the store compared with itself agrees on every row");
        string page = File.ReadAllText(html);
        Assert.That(Regex.Matches(page, "<tr class=\"agreement\">").Count, Is.EqualTo(2));
        Assert.That(page, Does.Contain($"{expected} of 4").And.Contain("4 of 4"));
        Assert.That(CliApp.Run(["report", "--store", dtrak, "--seed", "4", "--out", html, "--compare", Path.Combine(_dir, "none")]), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("--compare").And.Contain("none"));
    }

    [Test]
    public void Report_Pdf_PrintedByHeadlessChromium()
    {
        var store = ReportStore("store", "d-trak");
        var pdf = Path.Combine(_dir, "report.pdf");

        int code = CliApp.Run(["report", "--store", store, "--seed", "2", "--top", "3", "--out", Path.Combine(_dir, "report.html"), "--pdf", pdf]);

        Assert.That(code, Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var bytes = File.ReadAllBytes(pdf);
        Assert.That(System.Text.Encoding.ASCII.GetString(bytes, 0, 5), Is.EqualTo("%PDF-"));
        Assert.That(bytes.Length, Is.GreaterThan(5000), "a page with images, not an empty document");
        Assert.That(File.Exists(pdf + ".tmp"), Is.False);
    }

    [Test]
    public void Report_JourneyTrakStore_PerStepStripOfEachStepsBestRows()
    {
        var store = Path.Combine(_dir, "journey");
        Assert.That(CliApp.Run(["featurize", "--model", FindShippedModel(), "--subset", "0:12", "--method", "journey-trak", "--journey-steps", "2",
            "--dim", "32", "--out", store]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var html = Path.Combine(_dir, "report.html");
        _stdout.GetStringBuilder().Clear();

        int code = CliApp.Run(["report", "--store", store, "--seed", "3", "--steps", "4", "--top", "3", "--out", html, "--json"]);

        Assert.That(code, Is.EqualTo(CliApp.Ok), _stderr.ToString());
        using var json = JsonDocument.Parse(_stdout.ToString());
        var steps = json.RootElement.GetProperty("journey").EnumerateArray().ToList();
        Assert.That(steps, Has.Count.EqualTo(2));
        Assert.That(steps.Select(s => s.GetProperty("timestep").GetInt64()), Is.Ordered.Descending, "noise first");
        foreach (var step in steps)
        {
            var scores = step.GetProperty("scores").EnumerateArray().Select(v => v.GetSingle()).ToList();
            Assert.That(scores, Has.Count.EqualTo(5));
            Assert.That(scores, Is.Ordered.Descending);
        }
        string page = File.ReadAllText(html);
        Assert.That(Regex.Matches(page, "<tr class=\"step\">").Count, Is.EqualTo(2));
        Assert.That(Regex.Matches(page, "width=\"40\"").Count, Is.EqualTo(10), "five thumbnails per step");
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
