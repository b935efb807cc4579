using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Reporting;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests.Reporting;

/// <summary>The report's trust statistic, its score format, its escaping and its reading of history.json.</summary>
public sealed class AuditReportTests : TempDirectoryTest
{
    [TestCase(0.0825f, "0.08250")]
    [TestCase(1234.5f, "1235")]
    [TestCase(12345f, "1.235e+4")]
    [TestCase(-0.000123456f, "-0.0001235")]
    [TestCase(1.5e-7f, "1.500e-7")]
    [TestCase(0f, "0.000")]
    public void FormatScore_AsJavaScriptToPrecision4(float score, string expected) =>
        Assert.That(AuditReportHtml.FormatScore(score), Is.EqualTo(expected));

    [Test]
    public void ScoreSummary_KnownScores_MeanStdZAndPercentile()
    {
        float[] scores = [1, 2, 3, 4, 10];
        var summary = ScoreSummary.Of(scores);

        Assert.That(summary.Mean, Is.EqualTo(4).Within(1e-12));
        Assert.That(summary.Std, Is.EqualTo(Math.Sqrt(50.0 / 5)).Within(1e-12));
        Assert.That(summary.ZScore(10), Is.EqualTo(6 / Math.Sqrt(10)).Within(1e-12));
        Assert.That(ScoreSummary.Percentile(scores, 10), Is.EqualTo(100));
        Assert.That(ScoreSummary.Percentile(scores, 3), Is.EqualTo(60));
        Assert.That(ScoreSummary.Of([2, 2, 2]).ZScore(2), Is.Zero, "no spread: nothing stands out");
    }

    [Test]
    public void Render_LabelsFromUsers_AreEscaped()
    {
        var provenance = new ReportProvenance(null, "d-trak", null, null, null, null, null, "1", "onnx-attribution report --image '<x>.png'");
        var report = AuditReport.Create("<store>", new AttributionQuery("<script>alert(1)</script>", new float[4]), QueryOrigin.FromFile("a\"b.png"),
            [0.5f, 0.1f, 0.2f], 2, null, provenance, 2);

        string html = AuditReportHtml.Render(report);

        Assert.That(html, Does.Not.Contain("<script").And.Not.Contain("<store>").And.Not.Contain("<x>"));
        Assert.That(html, Does.Contain("&lt;script&gt;alert(1)&lt;/script&gt;").And.Contain("a&quot;b.png").And.Contain("(image unknown)"));
        Assert.That(report.Top.Select(r => r.Index), Is.EqualTo(new long[] { 0, 2 }));
    }

    [Test]
    public void Create_RowsRemovedFromTheStore_NeitherListedNorCounted()
    {
        var provenance = new ReportProvenance(null, "d-trak", null, null, null, null, null, "1", "cmd") { RemovedRows = [0, 3] };
        // Row 0 scores highest and row 3 lowest: removed, they must change neither the ranking nor the statistics.
        var report = AuditReport.Create("s", new AttributionQuery("q", new float[4]), QueryOrigin.FromFile("q.png"), [9f, 1f, 2f, -5f, 3f], 5, null, provenance, 2);

        Assert.That(report.Top.Select(r => r.Index), Is.EqualTo(new long[] { 4, 2, 1 }));
        Assert.That(report.Summary.Rows, Is.EqualTo(3));
        Assert.That(report.Summary.Mean, Is.EqualTo(2).Within(1e-12));
        Assert.That(report.Top[0].Percentile, Is.EqualTo(100));
    }

    [Test]
    public void Read_DamagedHistory_StoreFormatExceptionNamingTheFile()
    {
        string history = Path.Combine(TempDir, StoreFiles.History);
        File.WriteAllText(history, "{\"formatVersion\":1,\"versions\":[{\"number\":1,\"id\":\"short\"}]}");

        var e = Assert.Throws<StoreFormatException>(() => ReportProvenance.Read(TempDir, "d-trak", "cmd"));

        Assert.That(e!.Message, Does.Contain(history).And.Contain("not a valid history.json"));
    }

    [Test]
    public void Read_NoMetaNoHistory_Unversioned()
    {
        var provenance = ReportProvenance.Read(TempDir, "pixel", "cmd");

        Assert.That(provenance.DescribeVersion(), Is.EqualTo("unversioned"));
        Assert.That(provenance.ModelFingerprint, Is.Null);
    }
}
