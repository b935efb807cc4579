using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using OnnxAttribution.Primitives;
using OnnxAttribution.Imaging;

namespace OnnxAttribution.Training.Evaluation;

/// <summary>The LDS reports: lds.md from lds.json, and the curves over setting points from every lds*.json of a folder.</summary>
public static class LdsReportWriter
{
    /// <summary>lds.md again from the lds.json in <see cref="LdsOptions.Out"/> (e.g. docs/results; lds-NAME.* for <see cref="LdsOptions.Point"/> NAME).</summary>
    /// <exception cref="UserInputException">There is no such lds.json.</exception>
    public static EvaluationReport Report(LdsOptions o)
    {
        var stem = LdsRun.ResultStem(o);
        var jsonPath = Path.Combine(o.Out, stem + ".json");
        if (!File.Exists(jsonPath))
        {
            throw new UserInputException($"{o.Out}: no {stem}.json there (written by an LDS run{(o.Point.Length == 0 ? "" : " of point " + o.Point)})");
        }
        // The report's JSON is the file itself, as written; the tables are made from its typed reading.
        var node = JsonNode.Parse(File.ReadAllText(jsonPath))!;
        return EvaluationFolder.Report(Path.Combine(o.Out, stem + ".md"), LdsMarkdown(ReadResult(jsonPath), jsonPath), node, $"from {jsonPath}");
    }

    /// <summary>An lds*.json as written by an LDS run.</summary>
    /// <exception cref="UserInputException">The file is not an LDS result.</exception>
    internal static LdsResultFile ReadResult(string file)
    {
        var result = LdsFiles.Read<LdsResultFile>(file, "not an lds result");
        return result.Methods is not null ? result : throw new UserInputException($"{file}: no 'methods' array (not written by an LDS run)");
    }

    /// <summary>A fraction as a percentage with one decimal; "–" where it is undefined (NaN, infinite, or not written).</summary>
    private static string Pct(double? v) => v is double d && double.IsFinite(d) ? (100 * d).ToString("F1", CultureInfo.InvariantCulture) : "–";

    /// <summary>A number, or <paramref name="missing"/>: "(cached)" for a cost not measured (work done by an earlier run), "–" for a statistic that is undefined.</summary>
    private static string Num(double? v, string format, string missing = "(cached)") =>
        v is double d && double.IsFinite(d) ? d.ToString(format, CultureInfo.InvariantCulture) : missing;

    /// <summary>The Markdown tables of lds.md, generated from lds.json only.</summary>
    internal static string LdsMarkdown(LdsResultFile r, string source)
    {
        var table = new StringBuilder();
        table.AppendLine(CultureInfo.InvariantCulture, $"Generated from {Path.GetFileName(source)} by `{r.Command ?? "onnx-attribution lds"}`.");
        table.AppendLine();
        table.AppendLine(CultureInfo.InvariantCulture, $"N = {r.N}, M = {r.SubsetModels} subsets × S = {r.SubsetSeeds} training seeds, " +
            $"α = {r.Alpha}; {r.Queries} test queries (seeds {r.QuerySeeds}), {r.ValidationQueries} validation queries " +
            $"(seeds {r.ValidationQuerySeeds}); measured output: {r.Measured}.");
        table.AppendLine();
        var ceiling = r.Ceiling;
        table.AppendLine(ceiling is null
            ? "Noise ceiling: needs --subset-seeds ≥ 2."
            : string.Create(CultureInfo.InvariantCulture, $"Noise ceiling √ρ_S: **{Pct(ceiling.Mean)}%** [{Pct(ceiling.Low)}, " +
                $"{Pct(ceiling.High)}] (Spearman–Brown ρ_S {ceiling.Reliability:F3} [{ceiling.ReliabilityLow:F3}, {ceiling.ReliabilityHigh:F3}], " +
                $"{ceiling.Splits} seed splits of {ceiling.HalfSize} against {ceiling.HalfSize})."));
        table.AppendLine();
        table.AppendLine("| method | measured output | λ (chosen on validation) | validation LDS (%) | test LDS (%) | 95% interval | fraction of ceiling | " +
            "p (permutation) | LDS, query-mean removed (%) | rows agree between queries | queries | build (s) | build per example (ms) | " +
            "query (ms) | store (MiB) |");
        table.AppendLine("|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        var methods = r.Methods ?? [];
        foreach (var m in methods)
        {
            var costs = m.Costs;
            table.AppendLine(CultureInfo.InvariantCulture,
                $"| {m.Method} | {m.Output} | {(m.Damping is { } d ? LdsRun.Lambda(d) : "–")} | {Pct(m.ValidationLds)} | {Pct(m.Lds)} | " +
                $"[{Pct(m.Low)}, {Pct(m.High)}] | {Num(m.FractionOfCeiling, "F2", "–")} | " +
                $"{Num(m.P, "F3", "–")} | {Pct(m.QueryMeanRemoved)} | {Num(m.QueryAgreement, "F2", "–")} | {m.Queries} | " +
                $"{Num(costs?.BuildSeconds, "F1")} | {Num(1000 * costs?.BuildSecondsPerExample, "F1")} | " +
                $"{Num(costs?.QueryMilliseconds, "F0")} | {(costs?.StoreBytes ?? 0) / 1048576.0:F1} |");
        }
        var swept = methods.Where(m => m.DampingSweep is not null).ToList();
        if (swept.Count > 0)
        {
            table.AppendLine();
            var lambdas = swept[0].DampingSweep!.Select(p => p.Damping).ToList();
            table.AppendLine("| validation LDS (%) at λ | " + string.Join(" | ", lambdas.Select(LdsRun.Lambda)) + " |");
            table.AppendLine("|---|" + string.Concat(lambdas.Select(_ => "---:|")));
            foreach (var m in swept.Where(m => !m.Method.EndsWith("(final image)", StringComparison.Ordinal)))
            {
                table.AppendLine(CultureInfo.InvariantCulture, $"| {m.Method} | {string.Join(" | ", m.DampingSweep!.Select(p => Pct(p.ValidationLds)))} |");
            }
        }
        if (r.JourneySteps is { } steps)
        {
            table.AppendLine();
            table.AppendLine("| journey-trak step t | LDS (%) | 95% interval |");
            table.AppendLine("|---:|---:|---|");
            foreach (var step in steps)
            {
                table.AppendLine(CultureInfo.InvariantCulture, $"| {step.Timestep} | {Pct(step.Lds)} | [{Pct(step.Low)}, {Pct(step.High)}] |");
            }
        }
        return table.ToString();
    }

    /// <summary>
    /// Every lds*.json in <paramref name="outDirectory"/> (one per setting point of a run: K, noise draws, k, R) as one table,
    /// lds-curves.md, and LDS against build cost per training example, one line per method, lds-curves.png.
    /// </summary>
    public static EvaluationReport Curves(string outDirectory)
    {
        var files = Directory.Exists(outDirectory) ? Directory.GetFiles(outDirectory, "lds*.json").Order(StringComparer.Ordinal).ToList() : [];
        if (files.Count == 0)
        {
            throw new UserInputException($"{outDirectory}: no lds*.json there (written by LDS runs, one per setting point)");
        }
        var points = files.SelectMany(ReadCurvePoints).ToList();
        var table = new StringBuilder();
        table.AppendLine(CultureInfo.InvariantCulture, $"Generated from {string.Join(", ", files.Select(Path.GetFileName))} " +
            $"by `onnx-attribution lds-curves`: each method at each setting point (K timesteps × noise draws, projection k, R reference models " +
            $"whose scores are averaged); build cost is the seconds to build the method's stores (all R) per training example.");
        table.AppendLine();
        table.AppendLine("| method | setting | test LDS (%) | 95% interval | p | λ | build per example (ms) | query (ms) | store (MiB) | from |");
        table.AppendLine("|---|---|---:|---|---:|---:|---:|---:|---:|---|");
        static string F(double v, string format) => double.IsFinite(v) ? v.ToString(format, CultureInfo.InvariantCulture) : "–";
        foreach (var p in points.OrderBy(p => p.Method, StringComparer.Ordinal).ThenBy(p => p.BuildMsPerExample))
        {
            table.AppendLine(CultureInfo.InvariantCulture,
                $"| {p.Method} | {p.Setting} | {F(100 * p.Lds, "F1")} | [{F(100 * p.Low, "F1")}, {F(100 * p.High, "F1")}] | {F(p.P, "F3")} | " +
                $"{(p.Damping is { } d ? LdsRun.Lambda(d) : "–")} | {F(p.BuildMsPerExample, "F1")} | {F(p.QueryMs, "F0")} | {p.StoreBytes / 1048576.0:F1} | " +
                $"{p.File} |");
        }
        var series = points.Where(p => double.IsFinite(p.BuildMsPerExample) && p.BuildMsPerExample > 0 && double.IsFinite(p.Lds))
            .GroupBy(p => p.Method, StringComparer.Ordinal)
            .Select(g => g.OrderBy(p => p.BuildMsPerExample).ToList())
            .Select(g => new PlotSeries(g[0].Method, g.Select(p => 100 * p.Lds).ToList(), g.Select(p => p.BuildMsPerExample).ToList()))
            .ToList();
        var plotPath = Path.Combine(outDirectory, "lds-curves.png");
        if (series.Count > 0)
        {
            var plot = LinePlot.Write(plotPath, new LineChart([], series, "build cost: ms per training example (log scale)", "test LDS (%)", LogX: true), 760, 360);
            table.AppendLine();
            table.AppendLine(CultureInfo.InvariantCulture, $"![LDS against build cost](lds-curves.png){(plot.Note is null ? "" : " " + plot.Note)}");
        }
        var markdownPath = Path.Combine(outDirectory, "lds-curves.md");
        return EvaluationFolder.Report(markdownPath, table.ToString(), points, $"{points.Count} points from {files.Count} files; {markdownPath}{(series.Count > 0 ? ", " + plotPath : "")}");
    }

    /// <summary>The final-image rows of one lds*.json as curve points (a file without 'setting' is the default point: K 10 × 1, k 4096, R 1).</summary>
    internal static IEnumerable<CurvePoint> ReadCurvePoints(string file)
    {
        var result = ReadResult(file);
        var defaults = new Core.Attribution.Methods.MethodSettings();
        var setting = result.Setting;
        foreach (var m in result.Methods!.Where(m => m.Output == "final image"))
        {
            var costs = m.Costs;
            yield return new CurvePoint(
                m.Method.Replace(" (final image)", "", StringComparison.Ordinal),
                setting?.Timesteps ?? defaults.Timesteps, setting?.NoiseDraws ?? defaults.NoiseDraws, setting?.Dim ?? defaults.Dim, setting?.ReferenceModels ?? 1,
                m.Lds, m.Low, m.High, m.P, m.Damping,
                1000 * (costs?.BuildSecondsPerExample ?? double.NaN), costs?.QueryMilliseconds ?? double.NaN, costs?.StoreBytes ?? 0, Path.GetFileName(file))
            {
                QueryTimesteps = setting?.QueryTimesteps ?? 0,
                Projector = setting?.Projector ?? "dense",
            };
        }
    }
}

/// <summary>One method at one setting point, read from an lds*.json.</summary>
internal sealed record CurvePoint(string Method, int Timesteps, int NoiseDraws, int Dim, int ReferenceModels, double Lds, double Low, double High, double P,
    double? Damping, double BuildMsPerExample, double QueryMs, long StoreBytes, string File)
{
    /// <summary>The queries' timesteps Q (0: all K).</summary>
    public int QueryTimesteps { get; init; }

    /// <summary>The projector, "dense" unless the point says otherwise.</summary>
    public string Projector { get; init; } = "dense";

    public string Setting => string.Create(CultureInfo.InvariantCulture,
        $"K {Timesteps} × {NoiseDraws}, k {Dim}{(Projector == "dense" ? "" : $" {Projector}")}, R {ReferenceModels}{(QueryTimesteps == 0 ? "" : $", query Q {QueryTimesteps}")}");
}
