using System.Text.Json;
using System.Text.Json.Serialization;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime;
using OnnxAttribution.Onnx;

namespace OnnxAttribution.Edge;

/// <summary>What <c>attribute</c> is asked to do.</summary>
/// <param name="Model">The model folder.</param>
/// <param name="Store">The method store folder.</param>
/// <param name="Image">A PNG, or a folder whose *.png files are attributed as one batch.</param>
/// <param name="Top">Rows per query.</param>
/// <param name="Out">The grid PNG, or null for none.</param>
/// <param name="Json">Print the rankings as JSON.</param>
/// <param name="Threads">ONNX Runtime intra-op threads (0: its default).</param>
/// <param name="Label">The class label the images are attributed under (a class-conditional model), or null.</param>
/// <param name="Prompt">The prompt the images are attributed under (a text-conditioned model), or null.</param>
internal sealed record EdgeAttributeOptions(string Model, string Store, string Image, int Top, string? Out, bool Json, int Threads, long? Label = null,
    string? Prompt = null);

/// <summary>What <c>verify</c> is asked to check.</summary>
/// <param name="Model">The model folder.</param>
/// <param name="Store">The method store folder.</param>
/// <param name="Json">Print the result as JSON.</param>
internal sealed record EdgeVerifyOptions(string Model, string Store, bool Json);

/// <summary>The JSON <c>attribute --json</c> prints (the fields of the CLI's, without its timings).</summary>
internal sealed record EdgeAttributeResult(string Store, string Model, string Method, long Rows, string? Png, IReadOnlyList<QueryRanking> Rankings,
    int? StoreVersion = null, string? StoreVersionId = null, string? ModelSha256 = null);

/// <summary>Source-generated JSON for the output, so the trimmed (or NativeAOT) binary needs no reflection to write it.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true)]
[JsonSerializable(typeof(EdgeAttributeResult))]
[JsonSerializable(typeof(StoreCheck))]
internal sealed partial class EdgeJson : JsonSerializerContext;

/// <summary>
/// onnx-attribution-edge: the query side of the engine as one small program. Exit codes as the CLI's: 0 success, 1
/// unexpected failure, 2 bad input or files, 3 a check that ran and failed (verify), 130 cancelled.
/// </summary>
internal static class EdgeApp
{
    public const int Ok = 0;
    public const int BadInput = 2;
    public const int CheckFailed = 3;
    public const int Cancelled = 130;

    public const string Usage = """
        usage: onnx-attribution-edge attribute --model DIR --store DIR --image PNG|FOLDER [--label L | --prompt P] [--top K] [--out grid.png] [--json] [--threads N]
               onnx-attribution-edge verify --model DIR --store DIR [--json]
          --model    the model folder (model.json, forward.onnx, vjp.onnx)
          --store    a finished method store of that model (any method)
          --image    a PNG, or a folder: its *.png files are attributed as one batch
          --label    for a class-conditional model (required there): the class label the images are attributed under
          --prompt   for a text-conditioned model (required there): the prompt the images are attributed under, e.g. "a dark sneaker"
          --top      training rows per query (default 16)
          --out      the grid PNG: one row per query, the query first (default attribution.png; '-' for none)
          --json     print the rankings as JSON on stdout
          --threads  ONNX Runtime threads (default 0: its own choice)
        verify reads every feature row of the store (finite?) and checks it was built from the training images its
        source.json names; exit code 3 when it finds a problem.
        """;

    public static int Run(string[] args, TextWriter output, TextWriter errors)
    {
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
            {
                errors.WriteLine(Usage);
                return args.Length == 0 ? BadInput : Ok;
            }
            return args[0] switch
            {
                "attribute" => Attribute(Parse(args.AsSpan(1)), output, errors, cancel.Token),
                "verify" => Verify(ParseVerify(args.AsSpan(1)), output, cancel.Token),
                _ => throw new UserInputException($"unknown verb '{args[0]}'; known: attribute, verify"),
            };
        }
        catch (OperationCanceledException)
        {
            errors.WriteLine("cancelled");
            return Cancelled;
        }
        catch (Exception e) when (e is AttributionException or OnnxGraphException or FileNotFoundException or DirectoryNotFoundException)
        {
            // A library setting is named by this program's flag for it (Device → --device).
            errors.WriteLine($"error: {(e is SettingException s ? s.Describe((_, value) => $"--{s.KebabName} {value}") : e.Message)}");
            return BadInput;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>The options of <c>attribute</c>.</summary>
    /// <exception cref="UserInputException">An option is unknown, repeated, missing its value, or out of range; a required one is missing.</exception>
    public static EdgeAttributeOptions Parse(ReadOnlySpan<string> args)
    {
        var (values, json) = Options(args, ["--model", "--store", "--image", "--label", "--prompt", "--top", "--out", "--threads"]);
        int Count(string name, int fallback, int min)
        {
            if (!values.TryGetValue(name, out var text))
            {
                return fallback;
            }
            return int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n) && n >= min
                ? n
                : throw new UserInputException($"{name} {text}: expected a whole number ≥ {min}");
        }
        var output = values.GetValueOrDefault("--out", "attribution.png");
        long? label = null;
        if (values.TryGetValue("--label", out var labelText))
        {
            label = long.TryParse(labelText, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out long l)
                ? l
                : throw new UserInputException($"--label {labelText}: expected a whole number (a class label)");
        }
        return new EdgeAttributeOptions(Required(values, "--model"), Required(values, "--store"), Required(values, "--image"), Count("--top", 16, 1),
            output == "-" ? null : output, json, Count("--threads", 0, 0), label, values.GetValueOrDefault("--prompt"));
    }

    /// <summary>The options of <c>verify</c>.</summary>
    /// <exception cref="UserInputException">An option is unknown, repeated or missing its value; a required one is missing.</exception>
    public static EdgeVerifyOptions ParseVerify(ReadOnlySpan<string> args)
    {
        var (values, json) = Options(args, ["--model", "--store"]);
        return new EdgeVerifyOptions(Required(values, "--model"), Required(values, "--store"), json);
    }

    private static string Required(Dictionary<string, string> values, string name) =>
        values.TryGetValue(name, out var v) ? v : throw new UserInputException($"{name} is required\n{Usage}");

    /// <summary>The named options' values, and whether --json was given.</summary>
    private static (Dictionary<string, string> Values, bool Json) Options(ReadOnlySpan<string> args, string[] known)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        bool json = false;
        for (int i = 0; i < args.Length; i++)
        {
            string name = args[i];
            if (name == "--json")
            {
                json = true;
                continue;
            }
            if (!known.Contains(name, StringComparer.Ordinal))
            {
                throw new UserInputException($"unknown option '{name}'\n{Usage}");
            }
            if (i + 1 >= args.Length)
            {
                throw new UserInputException($"{name} needs a value");
            }
            if (!values.TryAdd(name, args[++i]))
            {
                throw new UserInputException($"{name} is given twice");
            }
        }
        return (values, json);
    }

    /// <summary>Attributes the image(s), writes the grid, prints the rankings.</summary>
    /// <exception cref="UserInputException">A folder or file is missing or not what it should be.</exception>
    public static int Attribute(EdgeAttributeOptions o, TextWriter output, TextWriter errors, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(o);
        var files = QueryFiles(o.Image);
        using var attributor = Attributor.Open(o.Model, o.Store, new SessionSettings(ExecutionDevice.Cpu, o.Threads));
        long? label = Runtime.Models.ConditionSpec.Query(attributor.Condition, o.Label, o.Prompt, "--label", "--prompt");
        var queries = files.Select(f => attributor.ReadPng(f) with { Condition = label }).ToList();
        var rankings = attributor.Attribute(queries, o.Top, null, cancel);
        if (o.Out is not null)
        {
            var grid = attributor.WriteGrid(o.Out, queries, rankings);
            if (grid.Note is not null)
            {
                errors.WriteLine(grid.Note);
            }
        }
        if (o.Json)
        {
            var provenance = Core.Attribution.StoreProvenance.Of(o.Store);
            var result = new EdgeAttributeResult(o.Store, attributor.ModelDirectory, attributor.Method, attributor.Rows, o.Out, rankings,
                provenance.Version, provenance.VersionId, provenance.ModelSha256);
            output.WriteLine(JsonSerializer.Serialize(result, EdgeJson.Default.EdgeAttributeResult));
        }
        else
        {
            foreach (var r in rankings)
            {
                output.WriteLine($"{r.Query}: " + string.Join("  ", r.Top.Take(10).Select(t => $"#{t.Index} ({t.Score:G3})")) + (r.Top.Count > 10 ? "  …" : ""));
            }
            output.WriteLine($"{rankings.Count} quer{(rankings.Count == 1 ? "y" : "ies")} over {attributor.Rows} rows with {attributor.Method}" + (o.Out is null ? "" : $"; wrote {o.Out}"));
        }
        return Ok;
    }

    /// <summary>Verifies the store; exit code 3 when a problem is found.</summary>
    /// <exception cref="UserInputException">A folder is missing or not what it should be.</exception>
    public static int Verify(EdgeVerifyOptions o, TextWriter output, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(o);
        // A model or store folder that is not there is bad input (2); a store that is there but fails its checks,
        // including those of opening it (a features file changed after finalizing), is a failed check (3).
        Runtime.ModelDirectory.Open(o.Model);
        if (!Directory.Exists(o.Store))
        {
            throw new UserInputException($"--store {o.Store}: no such folder");
        }
        string? method = null;
        StoreCheck check;
        try
        {
            using var attributor = Attributor.Open(o.Model, o.Store);
            method = attributor.Method;
            check = attributor.Verify(null, cancel);
        }
        catch (AttributionException e)
        {
            check = new StoreCheck([], 0, [e.Message]);
        }
        if (o.Json)
        {
            output.WriteLine(JsonSerializer.Serialize(check, EdgeJson.Default.StoreCheck));
        }
        else
        {
            foreach (var problem in check.Problems)
            {
                output.WriteLine($"problem: {problem}");
            }
            output.WriteLine($"{(check.Ok ? "ok" : "FAILED")}: {(method is null ? "" : method + " ")}store {o.Store}, " +
                $"{check.FeatureStores.Count} feature store(s), {check.RowsChecked} rows read, {check.Problems.Count} problem(s)");
        }
        return check.Ok ? Ok : CheckFailed;
    }

    /// <summary>The PNG itself, or a folder's *.png files in ordinal order.</summary>
    /// <exception cref="UserInputException">The path does not exist, or the folder holds no PNG.</exception>
    private static List<string> QueryFiles(string image)
    {
        if (File.Exists(image))
        {
            return [image];
        }
        if (!Directory.Exists(image))
        {
            throw new UserInputException($"--image {image}: no such file or folder");
        }
        var files = Directory.EnumerateFiles(image, "*.png").Order(StringComparer.Ordinal).ToList();
        return files.Count > 0 ? files : throw new UserInputException($"--image {image}: the folder holds no *.png file");
    }
}
