using System.Globalization;
using OnnxAttribution.Core;
using OnnxAttribution.Core.Runtime;

namespace OnnxAttribution.Server;

/// <summary>A store the server answers for, under the name used in its URL (<c>/stores/{Name}/attribute</c>).</summary>
/// <param name="Name">Letters, digits, '.', '_' and '-'.</param>
/// <param name="Directory">The method store folder (as built by <c>featurize</c>, <c>finalize</c> or <c>train-ensemble</c>).</param>
internal sealed record StoreSpec(string Name, string Directory);

/// <summary>What the server is started with.</summary>
/// <param name="Stores">At least one store; names are distinct.</param>
/// <param name="ModelDirectory">The model every store is opened with; null for each store's own (its source.json), as <c>attribute</c> does.</param>
/// <param name="Urls">Where Kestrel listens, ';'-separated (port 0: any free port).</param>
/// <param name="Session">ONNX Runtime settings shared by the stores' scorers and denoisers.</param>
internal sealed record ServerOptions(IReadOnlyList<StoreSpec> Stores, string? ModelDirectory, string Urls, SessionSettings Session)
{
    public const string DefaultUrls = "http://127.0.0.1:5080";
}

/// <summary>
/// The server's command line, parsed by hand (the server depends on Core and ASP.NET Core alone). Every error is a
/// <see cref="UserInputException"/> naming the option.
/// </summary>
internal static class ServerCommandLine
{
    public const string Help = """
        onnx-attribution-server: attribution lookups over HTTP on method stores (Core + ONNX Runtime, no libtorch).

        usage: onnx-attribution-server --store DIR [--store NAME=DIR ...] [--model DIR] [--urls URLS] [--threads N]
                                       [--device cpu|cuda]

        options
          --store DIR | NAME=DIR  a method store to serve (repeatable). NAME (letters, digits, '.', '_', '-') is
                                  its URL segment; it defaults to the folder's name. Each store is opened once,
                                  at start.
          --model DIR             the model folder every store is opened with (default: each store's own, from its
                                  source.json, as 'attribute' does).
          --urls URLS             where to listen, ';'-separated (default http://127.0.0.1:5080; port 0: any free port).
          --threads N             ONNX Runtime intra-op threads (default 0: ONNX Runtime's choice, one per core).
          --device cpu|cuda       where ONNX Runtime runs the models (default cpu; cuda needs the GPU build of ONNX
                                  Runtime, Microsoft.ML.OnnxRuntime.Gpu, as the CLI's --device does).
          --help                  this text.

        endpoints (JSON, camelCase)
          GET  /healthz                      {"status":"ok"}
          GET  /stores                       {"stores":[{name, method, rows, dim, directory, modelDirectory, channels, imageSize}]}
          POST /stores/{name}/attribute?top=K   (K >= 1, default 16) with one of
               application/json {"images": [[C*H*W floats in [-1,1]], ...]}    images as the model takes them
               application/json {"png": "<base64 PNG>"}                        resized to the model's size and channels
               application/json {"seeds": [7, 8], "sampler": "ddim", "steps": 50}   generated as 'attribute --seed' does
               image/png        the PNG itself as the body
             -> {store, method, queries: [{label, top: [{row, score}]}], timings: {generateMs, scoreMs, batchedRequests}}
             All queries of one request are scored together (one scan of the store); at most 256 per request.
             Requests to one store queue for its worker, which scores every request waiting (up to 64 queries) in
             one scan; timings.batchedRequests says how many shared it.
          errors: {"error": "..."}: 400 bad input (names the field), 404 unknown store, 415 other content types,
                  500 unexpected (logged).

        exit codes: 0 stopped (Ctrl+C), 1 unexpected failure, 2 bad options or store/model files.
        """;

    /// <summary>Parses the arguments; null when <c>--help</c> was asked for.</summary>
    /// <exception cref="UserInputException">An unknown option, a missing or malformed value, no store, or two stores with one name.</exception>
    public static ServerOptions? Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var stores = new List<StoreSpec>();
        string? model = null;
        string urls = ServerOptions.DefaultUrls;
        int threads = 0;
        var device = ExecutionDevice.Cpu;
        for (int i = 0; i < args.Count; i++)
        {
            var (option, inline) = Split(args[i]);
            switch (option)
            {
                case "--help" or "-h":
                    return null;
                case "--store":
                    stores.Add(ParseStore(Value(option, inline, args, ref i)));
                    break;
                case "--model":
                    model = Value(option, inline, args, ref i);
                    break;
                case "--urls":
                    urls = Value(option, inline, args, ref i);
                    break;
                case "--threads":
                    var text = Value(option, inline, args, ref i);
                    if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out threads))
                    {
                        throw new UserInputException($"--threads '{text}': expected a whole number ≥ 0 (0: ONNX Runtime's choice)");
                    }
                    break;
                case "--device":
                    var name = Value(option, inline, args, ref i);
                    // By name only: Enum.TryParse also takes numbers ("1" would be cuda).
                    if (name.Any(char.IsDigit) || !Enum.TryParse(name, ignoreCase: true, out device) || !Enum.IsDefined(device))
                    {
                        throw new UserInputException($"--device '{name}': expected cpu or cuda");
                    }
                    break;
                default:
                    throw new UserInputException($"unknown option '{args[i]}' (see --help)");
            }
        }
        if (stores.Count == 0)
        {
            throw new UserInputException("no store to serve: pass --store DIR (or --store NAME=DIR), once per store");
        }
        var twice = stores.GroupBy(s => s.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (twice is not null)
        {
            throw new UserInputException($"--store: two stores are named '{twice.Key}' ({string.Join(", ", twice.Select(s => s.Directory))}); name them with --store NAME=DIR");
        }
        return new ServerOptions(stores, model, urls, new SessionSettings(device, threads));
    }

    /// <summary>"--opt=value" into ("--opt", "value"); anything else into (arg, null).</summary>
    private static (string Option, string? Inline) Split(string arg)
    {
        int eq = arg.IndexOf('=', StringComparison.Ordinal);
        return arg.StartsWith("--", StringComparison.Ordinal) && eq > 2 ? (arg[..eq], arg[(eq + 1)..]) : (arg, null);
    }

    private static string Value(string option, string? inline, IReadOnlyList<string> args, ref int i)
    {
        if (inline is not null)
        {
            return inline.Length > 0 ? inline : throw new UserInputException($"{option}: the value is empty");
        }
        if (i + 1 >= args.Count || args[i + 1].StartsWith("--", StringComparison.Ordinal))
        {
            throw new UserInputException($"{option} needs a value (see --help)");
        }
        return args[++i];
    }

    /// <summary>"NAME=DIR" or "DIR" (named after its folder).</summary>
    private static StoreSpec ParseStore(string value)
    {
        int eq = value.IndexOf('=', StringComparison.Ordinal);
        if (eq > 0 && IsName(value[..eq]))
        {
            var dir = value[(eq + 1)..];
            return dir.Length > 0 ? new StoreSpec(value[..eq], dir) : throw new UserInputException($"--store '{value}': no folder after '='");
        }
        var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(value)));
        return IsName(name) ? new StoreSpec(name, value)
            : throw new UserInputException($"--store '{value}': the folder name '{name}' cannot be a URL segment (letters, digits, '.', '_', '-'); name it with --store NAME={value}");
    }

    private static bool IsName(string s) =>
        s.Length > 0 && s.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-') && s is not "." and not "..";
}
