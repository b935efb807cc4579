using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using OnnxAttribution.Core;
using OnnxAttribution.Core.Imaging;

namespace OnnxAttribution.Training.Evaluation;

/// <summary>The LDS reports: lds.md from lds.json, and the curves over setting points from every lds*.json of a folder.</summary>
public static partial class EvaluationRuns
{
    /// <summary>lds.md again from the lds.json in <see cref="LdsOptions.Out"/> (e.g. docs/results; lds-NAME.* for <see cref="LdsOptions.Point"/> NAME).</summary>
    /// <exception cref="UserInputException">There is no such lds.json.</exception>
    public static EvaluationReport LdsReport(LdsOptions o)
    {
        var stem = ResultStem(o);
        var jsonPath = Path.Combine(o.Out, stem + ".json");
        if (!File.Exists(jsonPath))
        {
            throw new UserInputException($"{o.Out}: no {stem}.json there (written by an LDS run{(o.Point.Length == 0 ? "" : " of point " + o.Point)})");
        }
        var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(jsonPath))!;
        return Report(Path.Combine(o.Out, stem + ".md"), LdsMarkdown(node, jsonPath), node, $"from {jsonPath}");
    }

    /// <summary>The Markdown tables of lds.md, generated from lds.json only.</summary>
    private static string LdsMarkdown(System.Text.Json.Nodes.JsonNode r, string source)
    {
        static string Pct(System.Text.Json.Nodes.JsonNode? v) =>
            v is null || v.GetValueKind() != JsonValueKind.Number ? "–" : (100 * v.GetValue<double>()).ToString("F1", CultureInfo.InvariantCulture);
        // A number, or "(cached)" for a cost not measured (work done by an earlier run), "–" for a statistic that is undefined.
        static string Num(System.Text.Json.Nodes.JsonNode? v, string format, string missing = "(cached)") =>
            v is null || v.GetValueKind() != JsonValueKind.Number ? missing : v.GetValue<double>().ToString(format, CultureInfo.InvariantCulture);
        var table = new StringBuilder();
        table.AppendLine(CultureInfo.InvariantCulture, $"Generated from {Path.GetFileName(source)} by `{r["command"]?.GetValue<string>() ?? "onnx-attribution lds"}`.");
        table.AppendLine();
        table.AppendLine(CultureInfo.InvariantCulture, $"N = {r["n"]}, M = {r["subsetModels"]} subsets × S = {r["subsetSeeds"]} training seeds, " +
            $"α = {r["alpha"]}; {r["queries"]} test queries (seeds {r["querySeeds"]?.GetValue<string>()}), {r["validationQueries"]} validation queries " +
            $"(seeds {r["validationQuerySeeds"]?.GetValue<string>()}); measured output: {r["measured"]?.GetValue<string>()}.");
        table.AppendLine();
        var ceiling = r["ceiling"];
        table.AppendLine(ceiling is null
            ? "Noise ceiling: needs --subset-seeds ≥ 2."
            : string.Create(CultureInfo.InvariantCulture, $"Noise ceiling √ρ_S: **{Pct(ceiling["mean"])}%** [{Pct(ceiling["low"])}, " +
                $"{Pct(ceiling["high"])}] (Spearman–Brown ρ_S {ceiling["reliability"]!.GetValue<double>():F3} " +
                $"[{ceiling["reliabilityLow"]!.GetValue<double>():F3}, {ceiling["reliabilityHigh"]!.GetValue<double>():F3}], " +
                $"{ceiling["splits"]} seed splits of {ceiling["halfSize"]} against {ceiling["halfSize"]})."));
        table.AppendLine();
        table.AppendLine("| method | measured output | λ (chosen on validation) | validation LDS (%) | test LDS (%) | 95% interval | fraction of ceiling | " +
            "p (permutation) | LDS, query-mean removed (%) | rows agree between queries | queries | build (s) | build per example (ms) | " +
            "query (ms) | store (MiB) |");
        table.AppendLine("|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var m in r["methods"]!.AsArray())
        {
            var d = m!["damping"];
            var fraction = m["fractionOfCeiling"];
            table.AppendLine(CultureInfo.InvariantCulture,
                $"| {m["method"]} | {m["output"]} | {(d is null ? "–" : Lambda(d.GetValue<double>()))} | {Pct(m["validationLds"])} | {Pct(m["lds"])} | " +
                $"[{Pct(m["low"])}, {Pct(m["high"])}] | " +
                $"{(fraction is null || fraction.GetValueKind() != JsonValueKind.Number ? "–" : fraction.GetValue<double>().ToString("F2", CultureInfo.InvariantCulture))} | " +
                $"{Num(m["p"], "F3", "–")} | {Pct(m["queryMeanRemoved"])} | {Num(m["queryAgreement"], "F2", "–")} | {m["queries"]} | " +
                $"{Num(m["costs"]!["buildSeconds"], "F1")} | " +
                $"{Num(m["costs"]!["buildSecondsPerExample"] is { } b && b.GetValueKind() == JsonValueKind.Number ? 1000 * b.GetValue<double>() : null, "F1")} | " +
                $"{Num(m["costs"]!["queryMilliseconds"], "F0")} | {m["costs"]!["storeBytes"]!.GetValue<long>() / 1048576.0:F1} |");
        }
        var swept = r["methods"]!.AsArray().Where(m => m!["dampingSweep"] is System.Text.Json.Nodes.JsonArray).ToList();
        if (swept.Count > 0)
        {
            table.AppendLine();
            var lambdas = swept[0]!["dampingSweep"]!.AsArray().Select(p => p!["damping"]!.GetValue<double>()).ToList();
            table.AppendLine("| validation LDS (%) at λ | " + string.Join(" | ", lambdas.Select(Lambda)) + " |");
            table.AppendLine("|---|" + string.Concat(lambdas.Select(_ => "---:|")));
            foreach (var m in swept.Where(m => !m!["method"]!.GetValue<string>().EndsWith("(final image)", StringComparison.Ordinal)))
            {
                table.AppendLine(CultureInfo.InvariantCulture, $"| {m!["method"]} | {string.Join(" | ", m["dampingSweep"]!.AsArray().Select(p => Pct(p!["validationLds"])))} |");
            }
        }
        if (r["journeySteps"] is System.Text.Json.Nodes.JsonArray steps)
        {
            table.AppendLine();
            table.AppendLine("| journey-trak step t | LDS (%) | 95% interval |");
            table.AppendLine("|---:|---:|---|");
            foreach (var step in steps)
            {
                table.AppendLine(CultureInfo.InvariantCulture, $"| {step!["timestep"]} | {Pct(step["lds"])} | [{Pct(step["low"])}, {Pct(step["high"])}] |");
            }
        }
        return table.ToString();
    }

    /// <summary>One method at one setting point, read from an lds*.json.</summary>
    private sealed record CurvePoint(string Method, int Timesteps, int NoiseDraws, int Dim, int ReferenceModels, double Lds, double Low, double High, double P,
        double? Damping, double BuildMsPerExample, double QueryMs, long StoreBytes, string File)
    {
        /// <summary>The queries' timesteps Q (0: all K).</summary>
        public int QueryTimesteps { get; init; }

        /// <summary>The projector, "dense" unless the point says otherwise.</summary>
        public string Projector { get; init; } = "dense";

        public string Setting => string.Create(CultureInfo.InvariantCulture,
            $"K {Timesteps} × {NoiseDraws}, k {Dim}{(Projector == "dense" ? "" : $" {Projector}")}, R {ReferenceModels}{(QueryTimesteps == 0 ? "" : $", query Q {QueryTimesteps}")}");
    }

    /// <summary>
    /// Every lds*.json in <paramref name="outDirectory"/> (one per setting point of a run: K, noise draws, k, R) as one table,
    /// lds-curves.md, and LDS against build cost per training example, one line per method, lds-curves.png.
    /// </summary>
    public static EvaluationReport LdsCurves(string outDirectory)
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
                $"{(p.Damping is { } d ? Lambda(d) : "–")} | {F(p.BuildMsPerExample, "F1")} | {F(p.QueryMs, "F0")} | {p.StoreBytes / 1048576.0:F1} | " +
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
        return Report(markdownPath, table.ToString(), points, $"{points.Count} points from {files.Count} files; {markdownPath}{(series.Count > 0 ? ", " + plotPath : "")}");
    }

    /// <summary>The final-image rows of one lds*.json as curve points (a file without 'setting' is the default point: K 10 × 1, k 4096, R 1).</summary>
    private static IEnumerable<CurvePoint> ReadCurvePoints(string file)
    {
        JsonNode root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(file)) ?? throw new JsonException("the file is empty");
        }
        catch (JsonException e)
        {
            throw new UserInputException($"{file}: not an lds result ({e.Message})", e);
        }
        if (root["methods"] is not JsonArray methods)
        {
            throw new UserInputException($"{file}: no 'methods' array (not written by an LDS run)");
        }
        var defaults = new Core.Attribution.Methods.MethodSettings();
        var setting = root["setting"];
        int Int(string key, int fallback) => setting?[key]?.GetValue<int>() ?? fallback;
        static double Number(JsonNode? v) => v is null ? double.NaN : v.GetValueKind() == JsonValueKind.Number ? v.GetValue<double>() : ReadSeconds(v);
        foreach (var m in methods.OfType<JsonObject>().Where(m => m["output"]?.GetValue<string>() == "final image"))
        {
            var costs = m["costs"];
            yield return new CurvePoint(
                m["method"]!.GetValue<string>().Replace(" (final image)", "", StringComparison.Ordinal),
                Int("timesteps", defaults.Timesteps), Int("noiseDraws", defaults.NoiseDraws), Int("dim", defaults.Dim), Int("referenceModels", 1),
                Number(m["lds"]), Number(m["low"]), Number(m["high"]), Number(m["p"]), m["damping"] is { } d && d.GetValueKind() == JsonValueKind.Number ? d.GetValue<double>() : null,
                1000 * Number(costs?["buildSecondsPerExample"]), Number(costs?["queryMilliseconds"]), costs?["storeBytes"]?.GetValue<long>() ?? 0, Path.GetFileName(file))
            {
                QueryTimesteps = Int("queryTimesteps", 0),
                Projector = setting?["projector"]?.GetValue<string>() ?? "dense",
            };
        }
    }
}
