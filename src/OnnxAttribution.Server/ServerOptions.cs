using System.Globalization;
using System.Net;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Server;

/// <summary>A store the server answers for, under the name used in its URL (<c>/stores/{Name}/attribute</c>).</summary>
/// <param name="Name">Letters, digits, '.', '_' and '-'.</param>
/// <param name="Directory">The method store folder (as built by <c>featurize</c>, <c>finalize</c> or <c>train-ensemble</c>); for a
/// cluster store, the head folder: the merged store's meta.json, preconditioner.bin and checksums.json.</param>
/// <param name="Cluster">True for a store served by the Orleans cluster under the same name (<c>--cluster-store</c>).</param>
internal sealed record StoreSpec(string Name, string Directory, bool Cluster = false)
{
    /// <summary>The option that named it, for messages.</summary>
    public string Option => Cluster ? "--cluster-store" : "--store";
}

/// <summary>What one request may cost, and how much work may wait: the bounds that keep one client from holding a store.</summary>
internal sealed record ServerLimits
{
    /// <summary>Queries (images or seeds) one request may carry.</summary>
    public int MaxQueries { get; init; } = 256;

    /// <summary>Seeds × sampling steps one request may ask for: the cost of generating its queries.</summary>
    public int MaxSeedSteps { get; init; } = 1024;

    /// <summary>An uploaded image may be at most this many times the model's side, per axis (checked on the header, before decoding).</summary>
    public int PngSideFactor { get; init; } = 8;

    /// <summary>The largest request body, in bytes (413 beyond).</summary>
    public long MaxBodyBytes { get; init; } = 8L << 20;

    /// <summary>The longest request target (path and query), in characters (414 beyond).</summary>
    public int MaxUrlLength { get; init; } = 8192;

    /// <summary>Requests that may wait for a store's scorer; more get 429 with Retry-After.</summary>
    public int QueueLength { get; init; } = 64;

    /// <summary>
    /// The most work an image query may find ahead of it at a store's scorer (queued and running, estimated from the recent
    /// cost per query); beyond it the request gets 429 with Retry-After at once rather than waiting. An idle store takes any
    /// request. The default keeps a lookup within about twice its own time on two cores (docs/guides/serve.md).
    /// </summary>
    public TimeSpan MaxWait { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Seed requests that may wait for a store's sampler (a lane of its own, so they do not hold up image queries).</summary>
    public int SeedQueueLength { get; init; } = 4;

    /// <summary>
    /// ONNX Runtime intra-op threads of a store's sampler (0: ONNX Runtime's choice, one per core): few, so that sampling
    /// leaves cores to the scorer and image queries stay fast while seeds are sampled.
    /// </summary>
    public int SeedThreads { get; init; } = 1;

    /// <summary>A request still unanswered after this is cancelled (its sampling and scan stop) and answered 504.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>Who may call the server, and how often.</summary>
internal sealed record AccessOptions
{
    /// <summary>Accepted API keys (<c>Authorization: Bearer KEY</c> or <c>X-Api-Key: KEY</c>); empty: no authentication.</summary>
    public IReadOnlyList<string> ApiKeys { get; init; } = [];

    /// <summary>Serve beyond loopback without API keys (a warning at start); otherwise that is refused.</summary>
    public bool AllowAnonymous { get; init; }

    /// <summary>Requests per second per key (per client address without keys); 0: no limit.</summary>
    public double RequestsPerSecond { get; init; }

    /// <summary>Requests a key may send at once above its rate (the token bucket's size); 0: max(1, 2 × the rate).</summary>
    public int Burst { get; init; }
}

/// <summary>What the server is started with.</summary>
/// <param name="Stores">At least one store; names are distinct.</param>
/// <param name="ModelDirectory">The model every store is opened with; null for each store's own (its source.json), as <c>attribute</c> does.</param>
/// <param name="Urls">Where Kestrel listens, ';'-separated (port 0: any free port).</param>
/// <param name="Session">ONNX Runtime settings shared by the stores' scorers and denoisers.</param>
internal sealed record ServerOptions(IReadOnlyList<StoreSpec> Stores, string? ModelDirectory, string Urls, SessionSettings Session)
{
    public const string DefaultUrls = "http://127.0.0.1:5080";

    /// <summary>The cluster id unless --cluster-id says otherwise (the silos' default).</summary>
    public const string DefaultClusterId = OnnxAttribution.Cluster.ClusterClient.DefaultClusterId;

    public ServerLimits Limits { get; init; } = new();

    public AccessOptions Access { get; init; } = new();

    /// <summary>On SIGTERM / Ctrl+C: how long in-flight requests may take to finish before their work is cancelled.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How often each store folder is checked for a new version (append, remove, finalize); zero: never (the stores stay as opened).</summary>
    public TimeSpan ReloadInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Log lines as text ("simple") or one JSON object per line ("json"), each field of the access log a property.</summary>
    public string LogFormat { get; init; } = "simple";

    /// <summary>The Redis server of the cluster's membership table (host:port), for <c>--cluster-store</c>s.</summary>
    public string? ClusterRedis { get; init; }

    /// <summary>The cluster's id (the silos' --cluster-id).</summary>
    public string ClusterId { get; init; } = DefaultClusterId;

    /// <summary>A cluster client to use instead of joining through <see cref="ClusterRedis"/> (tests: an in-process TestCluster's).</summary>
    public IGrainFactory? ClusterGrains { get; init; }

    /// <summary>The whole configuration (Logging:…, Kestrel:… as ASP.NET Core reads them); null: none beyond these options.</summary>
    public IConfiguration? Configuration { get; init; }

    /// <summary>True when every URL listens on a loopback address only (localhost, 127.0.0.0/8, ::1).</summary>
    public bool LoopbackOnly => Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).All(IsLoopback);

    private static bool IsLoopback(string url)
    {
        var host = TryParseUrl(url)?.Host.Trim('[', ']');
        return host is not null && (host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip)));
    }

    /// <summary>
    /// One URL as Kestrel takes it: http(s)://HOST:PORT with nothing after the port; '*' and '+' (any address) read as
    /// 0.0.0.0. Null when it is not such a URL.
    /// </summary>
    public static Uri? TryParseUrl(string url)
    {
        ArgumentNullException.ThrowIfNull(url);
        int scheme = url.IndexOf("://", StringComparison.Ordinal);
        string normal = scheme > 0 && url.Length > scheme + 3 && url[scheme + 3] is '*' or '+'
            ? string.Concat(url.AsSpan(0, scheme + 3), "0.0.0.0", url.AsSpan(scheme + 4))
            : url;
        return scheme > 0 && Uri.TryCreate(normal, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.Host.Length > 0
            && uri.PathAndQuery == "/" && uri.UserInfo.Length == 0 && uri.Fragment.Length == 0
            ? uri
            : null;
    }
}

/// <summary>
/// The server's settings, read through ASP.NET Core's configuration system: <c>appsettings.json</c> in the working
/// folder (or <c>--config FILE</c>), then environment variables <c>ONNX_ATTRIBUTION_{Key}</c> (':' written '__'), then
/// the command line, each over the one before. Every error is a <see cref="UserInputException"/> naming the option.
/// </summary>
internal static class ServerCommandLine
{
    /// <summary>The prefix of environment variables read as settings.</summary>
    public const string EnvironmentPrefix = "ONNX_ATTRIBUTION_";

    /// <summary>One setting: its command-line option, its configuration key, its default as shown, and what it does.</summary>
    private sealed record Setting(string Option, string Key, string Default, string Help, bool Repeatable = false, bool Flag = false);

    /// <summary>The defaults, shown by --help and used for settings not given.</summary>
    private static readonly ServerLimits DefaultLimits = new();

    private static readonly ServerOptions Defaults = new([], null, ServerOptions.DefaultUrls, SessionSettings.Default);

    private static readonly Setting[] Settings =
    [
        new("--store", "Stores", "none; at least one is required",
            "DIR | NAME=DIR: a method store to serve (repeatable). NAME (letters, digits, '.', '_', '-') is its URL segment; " +
            "it defaults to the folder's name. Opened and warmed up once, at start.", Repeatable: true),
        new("--cluster-store", "ClusterStores", "none",
            "NAME=DIR: a store served by the Orleans cluster under NAME (the silos' --serve NAME=...), repeatable; DIR holds the merged store's " +
            "meta.json, preconditioner.bin and checksums.json (no features.npy). Needs --cluster-redis.", Repeatable: true),
        new("--cluster-redis", "Cluster:Redis", "none", "the cluster's membership table, Redis host:port (the silos' --redis)."),
        new("--cluster-id", "Cluster:Id", ServerOptions.DefaultClusterId, "the cluster's id (the silos' --cluster-id)."),
        new("--model", "Model", "each store's own", "the model folder every store is opened with (default: the one its source.json names, as 'attribute' does)."),
        new("--urls", "Urls", ServerOptions.DefaultUrls, "where to listen, ';'-separated http(s)://HOST:PORT (port 0: any free port)."),
        new("--threads", "Threads", "0", "ONNX Runtime intra-op threads (0: ONNX Runtime's choice, one per core)."),
        new("--query-timesteps", "QueryTimesteps", "0",
            "the fast query setting of trak, d-trak and das stores: each image query is measured at this many of the store's K timesteps, " +
            "spread evenly; 0: all K. Fewer gradient passes per query, at a cost in quality (docs/results/performance.md, Speed)."),
        new("--device", "Device", "cpu", "cpu | cuda: where ONNX Runtime runs the models (cuda needs Microsoft.ML.OnnxRuntime.Gpu, as the CLI's --device does)."),
        new("--scan", "Scan", "auto",
            "auto | simd | onnx: what scans a store for a query's best rows (auto: simd on cpu, onnx on cuda, where the rows stay in GPU memory)."),
        new("--exact-scan", "ExactScan", "false",
            "scan each store's exact rows even where it has an 8-bit copy ('quantize'); by default the copy is scanned and its candidates re-scored exactly " +
            "(the same rows and scores from fewer bytes).", Flag: true),
        new("--reduce", "Reduce", "auto",
            "auto | host | device: where a query's per-pair gradients are summed and projected (auto: host on cpu, device on cuda, inside the graph)."),
        new("--api-key", "ApiKeys", "none",
            "an accepted API key (repeatable), sent as 'Authorization: Bearer KEY' or 'X-Api-Key: KEY'. Required when --urls listens beyond loopback, " +
            "unless --allow-anonymous.", Repeatable: true),
        new("--allow-anonymous", "AllowAnonymous", "false", "serve beyond loopback without API keys (a warning is logged at start).", Flag: true),
        new("--rate-limit", "RateLimit:PerSecond", "0", "requests per second per API key (per client address without keys); 0: no limit. Beyond it: 429 with Retry-After."),
        new("--rate-burst", "RateLimit:Burst", "0", "requests a key may send at once above its rate (0: max(1, 2 × --rate-limit))."),
        new("--max-queries", "Limits:MaxQueries", Show(DefaultLimits.MaxQueries), "queries (images or seeds) per request."),
        new("--max-seed-steps", "Limits:MaxSeedSteps", Show(DefaultLimits.MaxSeedSteps), "seeds × sampling steps per request (the cost of sampling its queries)."),
        new("--png-side-factor", "Limits:PngSideFactor", Show(DefaultLimits.PngSideFactor),
            "an uploaded image may be at most this many times the model's side per axis; checked on its header, before decoding."),
        new("--max-body-bytes", "Limits:MaxBodyBytes", Show(DefaultLimits.MaxBodyBytes), "the largest request body (413 beyond)."),
        new("--max-url-length", "Limits:MaxUrlLength", Show(DefaultLimits.MaxUrlLength), "the longest path and query string (414 beyond)."),
        new("--queue", "Limits:QueueLength", Show(DefaultLimits.QueueLength), "requests that may wait for a store's scorer; beyond: 429 with Retry-After."),
        new("--max-wait-ms", "Limits:MaxWaitMs", Show(DefaultLimits.MaxWait.TotalMilliseconds),
            "the most work (ms, estimated from recent queries) an image query may find ahead of it at a store; beyond: 429 with Retry-After at once. " +
            "An idle store takes any request."),
        new("--seed-queue", "Limits:SeedQueueLength", Show(DefaultLimits.SeedQueueLength),
            "seed requests that may wait for a store's sampler (its own lane: image queries do not wait behind sampling); beyond, " +
            "or past half of --request-timeout of work ahead: 429."),
        new("--seed-threads", "Limits:SeedThreads", Show(DefaultLimits.SeedThreads),
            "ONNX Runtime intra-op threads of a store's seed lane, which samples and scores seed queries (0: one per core); " +
            "few leave the cores to image queries."),
        new("--request-timeout", "Limits:RequestTimeoutSeconds", Show(DefaultLimits.RequestTimeout.TotalSeconds), "seconds before an unanswered request's work is cancelled (504)."),
        new("--drain-timeout", "DrainTimeoutSeconds", Show(Defaults.DrainTimeout.TotalSeconds), "on SIGTERM / Ctrl+C, seconds in-flight requests may take to finish before their work is cancelled."),
        new("--reload-interval-ms", "ReloadIntervalMs", Show(Defaults.ReloadInterval.TotalMilliseconds),
            "how often each store folder is checked for a new version (after append, remove, finalize); a new version is opened and warmed up " +
            "beside the old, then takes the next requests, while requests already on the old version finish on it. 0: never."),
        new("--log-format", "LogFormat", Defaults.LogFormat, "simple | json: log lines as text, or one JSON object per line (the access log's fields as properties)."),
        new("--config", "", "appsettings.json if present", "a JSON settings file (the keys below as JSON paths, e.g. {\"Limits\": {\"QueueLength\": 32}, \"Stores\": [\"DIR\"]})."),
    ];

    private static string Show(double value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>The <c>--help</c> text: every setting with its key, default and meaning, and the endpoints.</summary>
    public static string Help { get; } = BuildHelp();

    private static string BuildHelp()
    {
        var text = new System.Text.StringBuilder();
        text.AppendLine("onnx-attribution-server: attribution lookups over HTTP on method stores (Core + ONNX Runtime, no libtorch).");
        text.AppendLine();
        text.AppendLine("usage: onnx-attribution-server --store DIR [--store NAME=DIR ...] [--cluster-store NAME=DIR --cluster-redis HOST:PORT] [options]");
        text.AppendLine();
        text.AppendLine("settings: command line > environment ONNX_ATTRIBUTION_<Key> (':' as '__') > appsettings.json (or --config FILE)");
        foreach (var s in Settings)
        {
            string key = s.Key.Length == 0 ? "" : $" [{s.Key}]";
            text.AppendLine(CultureInfo.InvariantCulture, $"  {s.Option}{key}  (default {s.Default})");
            text.AppendLine(CultureInfo.InvariantCulture, $"      {s.Help}");
        }
        text.AppendLine("  --help  this text.");
        text.Append("""

            endpoints (JSON, camelCase; with API keys configured, all but /healthz and /readyz need one)
              GET  /healthz                      {"status":"ok"} while the process runs
              GET  /readyz                       200 {"status":"ready"}; 503 {"status":"not ready","reasons":[...]} while a
                                                 store is not open and warm, a queue is full, or the server is draining
              GET  /metrics                      Prometheus text: requests by status, latencies, queues, batches, scan times, rows
              GET  /stores                       {"stores":[{name, method, rows, dim, model, channels, imageSize}]}
              POST /stores/{name}/attribute?top=K   (K >= 1, default 16) with one of
                   application/json {"images": [[C*H*W floats in [-1,1]], ...]}    images as the model takes them
                   application/json {"png": "<base64 PNG>"}                        resized to the model's size and channels
                   application/json {"seeds": [7, 8], "sampler": "ddim", "steps": 50}   generated as 'attribute --seed' does
                   image/png        the PNG itself as the body
                 -> {store, method, queries: [{label, top: [{row, score}]}], timings: {generateMs, scoreMs, batchedRequests}}
                    a --cluster-store's answer adds partial (true when a shard did not answer) and missing: [{shard, firstRow,
                    rows, reason}], the rows the ranking leaves out; 503 (Retry-After) when no shard answered.
                 All queries of one request are scored together (one scan of the store). Requests to one store queue for
                 its worker, which scores every request waiting (up to 64 queries) in one scan; seed requests are sampled
                 and scored in a lane of their own. A lane with more work ahead than its budget answers 429 at once.
              errors: {"error": "..."} for every status: 400 bad input (names the field), 401 no or a wrong API key,
                      404, 405, 413 body too large, 414 URL too long, 415 other content types, 429 rate limit or
                      store busy (Retry-After), 500 unexpected (logged), 503 draining (Retry-After), 504 timed out.

            exit codes: 0 stopped (Ctrl+C, SIGTERM), 1 unexpected failure, 2 bad settings or store/model files.

            """);
        return text.ToString();
    }

    /// <summary>Parses the arguments over the environment and settings file; null when <c>--help</c> was asked for.</summary>
    /// <exception cref="UserInputException">An unknown option, a missing or malformed value, no store, or two stores with one name.</exception>
    public static ServerOptions? Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var given = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        var repeated = new Dictionary<string, int>(StringComparer.Ordinal);
        string? configFile = null;
        for (int i = 0; i < args.Count; i++)
        {
            var (option, inline) = Split(args[i]);
            if (option is "--help" or "-h")
            {
                return null;
            }
            var setting = Settings.FirstOrDefault(s => s.Option == option || (s.Key.Length > 0 && option.Equals("--" + s.Key, StringComparison.OrdinalIgnoreCase)))
                ?? throw new UserInputException($"unknown option '{args[i]}' (see --help)");
            string value = setting.Flag && inline is null && (i + 1 >= args.Count || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                ? "true"
                : Value(setting.Option, inline, args, ref i);
            if (setting.Key.Length == 0)
            {
                configFile = value;
            }
            else if (setting.Repeatable)
            {
                int n = repeated.GetValueOrDefault(setting.Key);
                repeated[setting.Key] = n + 1;
                given[$"{setting.Key}:{n}"] = value;
            }
            else
            {
                given[setting.Key] = value;
            }
        }
        var builder = new ConfigurationBuilder();
        if (configFile is not null)
        {
            var full = Path.GetFullPath(configFile);
            if (!File.Exists(full))
            {
                throw new UserInputException($"--config: file not found: {configFile}");
            }
            builder.AddJsonFile(full, optional: false);
        }
        else
        {
            builder.AddJsonFile(Path.Combine(Directory.GetCurrentDirectory(), "appsettings.json"), optional: true);
        }
        builder.AddEnvironmentVariables(EnvironmentPrefix);
        // A repeated option given on the command line replaces the list from the file or the environment, not merges into it.
        var configuration = ReplaceLists(builder, given, repeated.Keys);
        return FromConfiguration(configuration);
    }

    private static IConfiguration ReplaceLists(ConfigurationBuilder builder, Dictionary<string, string?> given, IEnumerable<string> lists)
    {
        IConfiguration below;
        try
        {
            below = builder.Build();
        }
        catch (InvalidDataException e)
        {
            throw new UserInputException($"settings file: {e.Message}", e);
        }
        catch (FormatException e)
        {
            throw new UserInputException($"settings file: {e.Message}", e);
        }
        foreach (var list in lists)
        {
            foreach (var old in below.GetSection(list).GetChildren().Where(c => !given.ContainsKey(c.Path)))
            {
                given[old.Path] = null;
            }
        }
        return new ConfigurationBuilder().AddConfiguration(below).AddInMemoryCollection(given).Build();
    }

    /// <summary>Reads and checks every setting from a configuration.</summary>
    /// <exception cref="UserInputException">A value that does not parse or is out of range, naming its option and key.</exception>
    public static ServerOptions FromConfiguration(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var stores = List(configuration, "Stores").Select(v => ParseStore(v, cluster: false))
            .Concat(List(configuration, "ClusterStores").Select(v => ParseStore(v, cluster: true))).ToList();
        if (stores.Count == 0)
        {
            throw new UserInputException("no store to serve: pass --store DIR (or --store NAME=DIR), or --cluster-store NAME=DIR, once per store");
        }
        var twice = stores.GroupBy(s => s.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (twice is not null)
        {
            throw new UserInputException($"{twice.First().Option}: two stores are named '{twice.Key}' ({string.Join(", ", twice.Select(s => s.Directory))}); name them with --store NAME=DIR");
        }
        string? redis = configuration["Cluster:Redis"];
        if (stores.Any(s => s.Cluster) && string.IsNullOrEmpty(redis))
        {
            throw new UserInputException("--cluster-store needs --cluster-redis HOST:PORT: the Redis server of the cluster's membership table (the silos' --redis)");
        }
        string urls = configuration["Urls"] ?? ServerOptions.DefaultUrls;
        CheckUrls(urls);
        var deviceName = configuration["Device"] ?? "cpu";
        // By name only: Enum.TryParse also takes numbers ("1" would be cuda).
        if (deviceName.Any(char.IsDigit) || !Enum.TryParse(deviceName, ignoreCase: true, out ExecutionDevice device) || !Enum.IsDefined(device))
        {
            throw new UserInputException($"--device '{deviceName}': expected cpu or cuda");
        }
        var scanName = configuration["Scan"] ?? "auto";
        if (scanName.Any(char.IsDigit) || !Enum.TryParse(scanName, ignoreCase: true, out ScanEngine scan) || !Enum.IsDefined(scan))
        {
            throw new UserInputException($"--scan '{scanName}': expected auto, simd or onnx");
        }
        var reduceName = configuration["Reduce"] ?? "auto";
        if (reduceName.Any(char.IsDigit) || !Enum.TryParse(reduceName, ignoreCase: true, out GradientReduction reduce) || !Enum.IsDefined(reduce))
        {
            throw new UserInputException($"--reduce '{reduceName}': expected auto, host or device");
        }
        var d = DefaultLimits;
        var limits = new ServerLimits
        {
            MaxQueries = Int(configuration, "Limits:MaxQueries", d.MaxQueries, 1),
            MaxSeedSteps = Int(configuration, "Limits:MaxSeedSteps", d.MaxSeedSteps, 1),
            PngSideFactor = Int(configuration, "Limits:PngSideFactor", d.PngSideFactor, 1),
            MaxBodyBytes = Int(configuration, "Limits:MaxBodyBytes", checked((int)d.MaxBodyBytes), 1024),
            MaxUrlLength = Int(configuration, "Limits:MaxUrlLength", d.MaxUrlLength, 64),
            QueueLength = Int(configuration, "Limits:QueueLength", d.QueueLength, 1),
            MaxWait = TimeSpan.FromMilliseconds(Int(configuration, "Limits:MaxWaitMs", (int)d.MaxWait.TotalMilliseconds, 1)),
            SeedQueueLength = Int(configuration, "Limits:SeedQueueLength", d.SeedQueueLength, 1),
            SeedThreads = Int(configuration, "Limits:SeedThreads", d.SeedThreads, 0),
            RequestTimeout = TimeSpan.FromSeconds(Int(configuration, "Limits:RequestTimeoutSeconds", (int)d.RequestTimeout.TotalSeconds, 1)),
        };
        var keys = List(configuration, "ApiKeys").ToList();
        var weak = keys.FirstOrDefault(k => k.Length < 16 || k.Any(char.IsWhiteSpace));
        if (weak is not null)
        {
            throw new UserInputException($"--api-key: a key of {weak.Length} characters{(weak.Any(char.IsWhiteSpace) ? " with white space" : "")}; " +
                "use at least 16 characters, no spaces (e.g. openssl rand -hex 16)");
        }
        double rate = Double(configuration, "RateLimit:PerSecond", 0);
        var access = new AccessOptions
        {
            ApiKeys = keys,
            AllowAnonymous = Bool(configuration, "AllowAnonymous"),
            RequestsPerSecond = rate,
            Burst = Int(configuration, "RateLimit:Burst", 0, 0),
        };
        var options = new ServerOptions(stores, configuration["Model"], urls, new SessionSettings(device, Int(configuration, "Threads", 0, 0))
        {
            QueryTimesteps = Int(configuration, "QueryTimesteps", 0, 0),
            Scan = scan,
            Reduction = reduce,
            ExactScan = Bool(configuration, "ExactScan"),
        })
        {
            Limits = limits,
            Access = access,
            LogFormat = configuration["LogFormat"] is { } format
                ? (format is "simple" or "json" ? format : throw Bad("LogFormat", format, "simple or json"))
                : Defaults.LogFormat,
            DrainTimeout = TimeSpan.FromSeconds(Int(configuration, "DrainTimeoutSeconds", (int)Defaults.DrainTimeout.TotalSeconds, 0)),
            ReloadInterval = TimeSpan.FromMilliseconds(Int(configuration, "ReloadIntervalMs", (int)Defaults.ReloadInterval.TotalMilliseconds, 0)),
            ClusterRedis = redis,
            ClusterId = configuration["Cluster:Id"] ?? ServerOptions.DefaultClusterId,
            Configuration = configuration,
        };
        if (keys.Count == 0 && !access.AllowAnonymous && !options.LoopbackOnly)
        {
            throw new UserInputException($"--urls {urls} listens beyond loopback: give API keys (--api-key, or ApiKeys in the settings) or pass --allow-anonymous");
        }
        return options;
    }

    /// <summary>Each URL absolute http(s) with a host and a port in range; checked before Kestrel sees it.</summary>
    private static void CheckUrls(string urls)
    {
        var parts = urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0)
        {
            throw new UserInputException($"--urls '{urls}': no URL; expected e.g. {ServerOptions.DefaultUrls}");
        }
        foreach (var url in parts)
        {
            if (ServerOptions.TryParseUrl(url) is null)
            {
                throw new UserInputException($"--urls '{url}': expected http://HOST:PORT or https://HOST:PORT (e.g. {ServerOptions.DefaultUrls}; port 0: any free port)");
            }
        }
    }

    private static IEnumerable<string> List(IConfiguration configuration, string key)
    {
        var section = configuration.GetSection(key);
        // "Stores": "DIR" in a file or one environment variable is a list of one.
        return section.Value is { Length: > 0 } single
            ? [single]
            : section.GetChildren().OrderBy(c => int.TryParse(c.Key, CultureInfo.InvariantCulture, out int n) ? n : int.MaxValue)
                .Select(c => c.Value).OfType<string>().Where(v => v.Length > 0);
    }

    /// <summary>A malformed value, named by its option and its configuration key (it may come from a file or the environment).</summary>
    private static UserInputException Bad(string key, string text, string expected) =>
        new($"{Settings.Single(s => s.Key == key).Option} '{text}' (setting {key}): expected {expected}");

    private static int Int(IConfiguration configuration, string key, int fallback, int min)
    {
        var text = configuration[key];
        if (text is null)
        {
            return fallback;
        }
        return int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value) && value >= min
            ? value
            : throw Bad(key, text, $"a whole number ≥ {min}");
    }

    private static double Double(IConfiguration configuration, string key, double fallback)
    {
        var text = configuration[key];
        if (text is null)
        {
            return fallback;
        }
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && double.IsFinite(value) && value >= 0
            ? value
            : throw Bad(key, text, "a number ≥ 0");
    }

    private static bool Bool(IConfiguration configuration, string key)
    {
        var text = configuration[key];
        return text is null ? false : bool.TryParse(text, out bool value) ? value
            : throw Bad(key, text, "true or false");
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
    private static StoreSpec ParseStore(string value, bool cluster)
    {
        string option = new StoreSpec("", "", cluster).Option;
        int eq = value.IndexOf('=', StringComparison.Ordinal);
        if (eq > 0 && IsName(value[..eq]))
        {
            var dir = value[(eq + 1)..];
            return dir.Length > 0 ? new StoreSpec(value[..eq], dir, cluster) : throw new UserInputException($"{option} '{value}': no folder after '='");
        }
        var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(value)));
        return IsName(name) ? new StoreSpec(name, value, cluster)
            : throw new UserInputException($"{option} '{value}': the folder name '{name}' cannot be a URL segment (letters, digits, '.', '_', '-'); name it with {option} NAME={value}");
    }

    private static bool IsName(string s) =>
        s.Length > 0 && s.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-') && s is not "." and not "..";
}
