using System.Diagnostics.CodeAnalysis;
using System.Text.Json;
using System.Text.Json.Serialization;
using CommandLine;
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

    public static int Run(string[] args, TextWriter output, TextWriter errors)
    {
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        // As the CLI: the parser writes --help, --version and its errors (each naming the option) to stderr.
        using var parser = new Parser(s =>
        {
            s.HelpWriter = errors;
            s.AutoVersion = true;
        });
        try
        {
            return Parse(parser, args).MapResult(
                (AttributeVerb o) => Attribute(o.ToOptions(), output, errors, cancel.Token),
                (VerifyVerb o) => Verify(o.ToOptions(), output, cancel.Token),
                failures => failures.All(f => f.Tag is ErrorType.HelpRequestedError or ErrorType.HelpVerbRequestedError or ErrorType.VersionRequestedError)
                    && args.Length > 0 ? Ok : BadInput);
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

    /// <summary>The parser reads and sets the verbs' properties by reflection: they are kept whole in a trimmed or NativeAOT build.</summary>
    [DynamicDependency(DynamicallyAccessedMemberTypes.PublicProperties | DynamicallyAccessedMemberTypes.PublicConstructors, typeof(AttributeVerb))]
    [DynamicDependency(DynamicallyAccessedMemberTypes.PublicProperties | DynamicallyAccessedMemberTypes.PublicConstructors, typeof(VerifyVerb))]
    private static ParserResult<object> Parse(Parser parser, string[] args) => parser.ParseArguments<AttributeVerb, VerifyVerb>(args);

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
