using System.Globalization;
using System.Net;
using System.Text;
using OnnxAttribution.Imaging;

namespace OnnxAttribution.Core.Reporting;

/// <summary>
/// Renders an <see cref="AuditReport"/> as one self-contained HTML file: images inlined as <c>data:image/png</c> URIs,
/// CSS inline, no script and no external asset, so it reads the same offline and years later. Every string that comes
/// from a user or a file is HTML-escaped.
/// </summary>
public static class AuditReportHtml
{
    private const string Style = """
        body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#1d2330;line-height:1.45}
        h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ccd;padding-bottom:.2rem}
        img.px{image-rendering:pixelated;background:#000;border:1px solid #889}
        table{border-collapse:collapse;width:100%}th,td{padding:.3rem .5rem;border-bottom:1px solid #e3e5ea;text-align:left}
        td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
        .out{color:#0a6b2d;font-weight:600}.tail{color:#8a5a00}.bulk{color:#9b1c1c}
        dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0;word-break:break-all}
        code{background:#f1f2f5;padding:.1rem .3rem;border-radius:3px}.guide{background:#f6f7f9;padding:.8rem 1rem;border-left:4px solid #5b6b8c}
        """;

    /// <summary>The report as an HTML document.</summary>
    /// <param name="report">The report.</param>
    /// <exception cref="ArgumentNullException"><paramref name="report"/> is null.</exception>
    public static string Render(AuditReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
            .Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
            .Append("<title>Attribution audit: ").Append(E(report.Query)).Append(" in ").Append(E(report.Store)).Append("</title>\n")
            .Append("<style>").Append(Style).Append("</style>\n</head>\n<body>\n")
            .Append("<h1>Attribution audit report</h1>\n");
        Query(html, report);
        html.Append("<h2>How to read this report</h2>\n<p class=\"guide\">").Append(E(AuditReport.ReadingGuide)).Append("</p>\n");
        Rows(html, report);
        Agreement(html, report);
        JourneyStrip(html, report);
        Provenance(html, report);
        html.Append("</body>\n</html>\n");
        return html.ToString();
    }

    /// <summary>
    /// A score as people read it: 4 significant digits, as JavaScript's <c>toPrecision(4)</c> writes the same float
    /// (the auditor's page shows scores so, and a test finds them in the report).
    /// </summary>
    /// <param name="score">The score.</param>
    public static string FormatScore(float score)
    {
        // Through the float's shortest text: the double JavaScript reads from the server's JSON.
        double x = double.Parse(score.ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
        if (x == 0)
        {
            return "0.000";
        }
        // Many exact digits, then half away from zero at the fourth as JavaScript rounds (1234.5 → "1235"; .NET's "E3" gives "1234").
        string exact = Math.Abs(x).ToString("E20", CultureInfo.InvariantCulture);
        int e = int.Parse(exact[(exact.IndexOf('E', StringComparison.Ordinal) + 1)..], CultureInfo.InvariantCulture);
        int n = int.Parse(exact[..1] + exact[2..5], CultureInfo.InvariantCulture) + (exact[5] >= '5' ? 1 : 0);
        if (n == 10000)
        {
            (n, e) = (1000, e + 1);
        }
        string sign = x < 0 ? "-" : "", d = n.ToString(CultureInfo.InvariantCulture);
        if (e < -6 || e >= 4)
        {
            return string.Create(CultureInfo.InvariantCulture, $"{sign}{d[0]}.{d[1..]}e{(e >= 0 ? "+" : "-")}{Math.Abs(e)}");
        }
        return sign + (e >= 3 ? d : e >= 0 ? $"{d[..(e + 1)]}.{d[(e + 1)..]}" : $"0.{new string('0', -e - 1)}{d}");
    }

    /// <summary>An image as a <c>data:image/png;base64,…</c> URI.</summary>
    /// <param name="image">C·H·W values in [-1, 1].</param>
    /// <param name="channels">C.</param>
    /// <param name="size">H = W.</param>
    public static string PngDataUri(ReadOnlySpan<float> image, int channels, int size) =>
        "data:image/png;base64," + Convert.ToBase64String(PngImage.Encode(image, channels, size, size));

    private static void Query(StringBuilder html, AuditReport report)
    {
        html.Append("<h2>Query</h2>\n<p>");
        if (report.QueryImage.Length > 0 && report.ImageSize > 0)
        {
            html.Append("<img class=\"px\" id=\"query\" width=\"128\" height=\"128\" alt=\"the query image\" src=\"")
                .Append(PngDataUri(report.QueryImage, report.Channels, report.ImageSize)).Append("\"><br>\n");
        }
        html.Append("Query <code>").Append(E(report.Query)).Append("</code>, ").Append(E(report.Origin.Describe()))
            .Append(report.Prompt is { } prompt ? $", under the prompt <code>{E(prompt)}</code>"
                : report.Condition is long label ? $", under class label <code>{label.ToString(CultureInfo.InvariantCulture)}</code>" : "")
            .Append(", attributed to the ").Append(report.Summary.Rows.ToString(CultureInfo.InvariantCulture))
            .Append(" training rows of store <code>").Append(E(report.Store)).Append("</code> with method <code>")
            .Append(E(report.Provenance.Method)).Append("</code>.</p>\n");
    }

    private static void Rows(StringBuilder html, AuditReport report)
    {
        var s = report.Summary;
        html.Append("<h2>Top ").Append(report.Top.Count.ToString(CultureInfo.InvariantCulture)).Append(" training images</h2>\n")
            .Append(Invariant($"<p>All {s.Rows} rows' scores of this query: mean {s.Mean:G4}, standard deviation {s.Std:G4}, from {s.Min:G4} to {s.Max:G4}.</p>\n"))
            .Append("<table id=\"results\">\n<thead><tr><th class=\"num\">rank</th><th>image</th><th class=\"num\">row</th>")
            .Append("<th class=\"num\">score</th><th>label</th><th>trust: z, percentile</th></tr></thead>\n<tbody>\n");
        for (int i = 0; i < report.Top.Count; i++)
        {
            var row = report.Top[i];
            html.Append(Invariant($"<tr class=\"result\"><td class=\"num\">{row.Rank}</td><td>"));
            if (i < report.RowImages.Count)
            {
                html.Append("<img class=\"px\" width=\"64\" height=\"64\" alt=\"training row ").Append(row.Index.ToString(CultureInfo.InvariantCulture))
                    .Append("\" src=\"").Append(PngDataUri(report.RowImages[i], report.Channels, report.ImageSize)).Append("\">");
            }
            else
            {
                html.Append("(image unknown)");
            }
            var (css, words) = row.ZScore >= AuditReport.StandsOutZ ? ("out", "stands out")
                : row.ZScore >= AuditReport.BulkZ ? ("tail", "in the tail") : ("bulk", "barely distinguishable from the bulk");
            html.Append(Invariant($"</td><td class=\"num\">{row.Index}</td><td class=\"num score\">{FormatScore(row.Score)}</td><td>"))
                .Append(row.Label is int label ? label.ToString(CultureInfo.InvariantCulture) : "—")
                .Append(Invariant($"</td><td class=\"trust {css}\">z = {row.ZScore:F2}, {row.Percentile:F1}th percentile: {words}</td></tr>\n"));
        }
        html.Append("</tbody>\n</table>\n");
    }

    /// <summary>The other stores' top rows and their overlap with this report's; nothing when none was compared.</summary>
    private static void Agreement(StringBuilder html, AuditReport report)
    {
        if (report.Agreement.Count == 0)
        {
            return;
        }
        int k = report.Top.Count;
        html.Append("<h2>Agreement between methods</h2>\n<p>The same query answered by other stores. A row that several methods rank high is ")
            .Append("stronger evidence than one that a single method does; rows that are also in this report's top ")
            .Append(k.ToString(CultureInfo.InvariantCulture)).Append(" are marked.</p>\n<table id=\"agreement\">\n")
            .Append("<thead><tr><th>store</th><th>method</th><th class=\"num\">in common</th><th>its top rows</th></tr></thead>\n<tbody>\n");
        var ours = report.Top.Select(r => r.Index).ToHashSet();
        foreach (var a in report.Agreement)
        {
            string rows = string.Join(" ", a.Top.Select(r => ours.Contains(r) ? $"<b>#{r}</b>" : $"#{r}"));
            html.Append("<tr class=\"agreement\"><td>").Append(E(a.Store)).Append("</td><td>").Append(E(a.Method)).Append("</td><td class=\"num\">")
                .Append(Invariant($"{a.Overlap} of {a.Top.Count}")).Append("</td><td>").Append(rows).Append("</td></tr>\n");
        }
        html.Append("</tbody>\n</table>\n");
    }

    /// <summary>Journey-TRAK's per-step strip: each sampling step's best rows, noise first; nothing for other methods.</summary>
    private static void JourneyStrip(StringBuilder html, AuditReport report)
    {
        if (report.Journey.Count == 0)
        {
            return;
        }
        html.Append("<h2>Across the sampling steps</h2>\n<p>Journey-TRAK scores each step of the query's sampling trajectory on its own: ")
            .Append("the rows each step credits most, from pure noise (top) to the final image (bottom). Rows that stay from step to step ")
            .Append("shaped the image throughout; rows that appear only early or late shaped its coarse layout or its details.</p>\n")
            .Append("<table id=\"journey\">\n<thead><tr><th class=\"num\">t</th><th>its best rows</th></tr></thead>\n<tbody>\n");
        foreach (var step in report.Journey)
        {
            html.Append("<tr class=\"step\"><td class=\"num\">").Append(step.Timestep.ToString(CultureInfo.InvariantCulture)).Append("</td><td>");
            for (int i = 0; i < step.Rows.Count; i++)
            {
                long row = step.Rows[i];
                string label = Invariant($"#{row} {FormatScore(step.Scores[i])}");
                if (report.JourneyImages.TryGetValue(row, out var image))
                {
                    html.Append("<img class=\"px\" width=\"40\" height=\"40\" alt=\"").Append(label).Append("\" title=\"").Append(label)
                        .Append("\" src=\"").Append(PngDataUri(image, report.Channels, report.ImageSize)).Append("\"> ");
                }
                else
                {
                    html.Append(label).Append(' ');
                }
            }
            html.Append("</td></tr>\n");
        }
        html.Append("</tbody>\n</table>\n");
    }

    private static void Provenance(StringBuilder html, AuditReport report)
    {
        var p = report.Provenance;
        html.Append("<h2>Provenance</h2>\n<dl>\n");
        Item(html, "model SHA-256", p.ModelFingerprint ?? "not recorded (the store has no meta.json)");
        Item(html, "method", p.Method);
        Item(html, "measurement", p.Measurement ?? "—");
        Item(html, "timesteps", p.Timesteps is { } t ? string.Join(", ", t) : "—");
        Item(html, "k (projected dimension)", p.Dim?.ToString(CultureInfo.InvariantCulture) ?? "—");
        Item(html, "store version", p.DescribeVersion());
        Item(html, "tool version", $"onnx-attribution {p.ToolVersion}");
        html.Append("<dt>reproduce with</dt><dd><code id=\"command\">").Append(E(p.Command)).Append("</code></dd>\n</dl>\n");
    }

    private static void Item(StringBuilder html, string name, string value) =>
        html.Append("<dt>").Append(E(name)).Append("</dt><dd>").Append(E(value)).Append("</dd>\n");

    private static string E(string text) => WebUtility.HtmlEncode(text);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
