using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Diagnostics.Metrics;
using OnnxAttribution.Cluster;
using OnnxAttribution.Cluster.Serving;
using OnnxAttribution.Primitives;
using OnnxAttribution.Onnx;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace OnnxAttribution.Server;

/// <summary>How the server process ends; the numbers follow the CLI's exit codes.</summary>
internal enum ServerExit
{
    /// <summary>Stopped (Ctrl+C, SIGTERM) after serving, or --help.</summary>
    Stopped = 0,

    /// <summary>An unexpected failure (a bug, or ONNX Runtime failing); the stack trace goes to stderr.</summary>
    Crashed = 1,

    /// <summary>Bad options, or a store or model file that is missing, damaged or does not fit; the message names it.</summary>
    BadInput = 2,
}

/// <summary>The server: opens the stores, maps the endpoints, maps errors to status codes.</summary>
internal static class ServerApp
{
    public static async Task<int> RunAsync(string[] args) => (int)await RunUntilStoppedAsync(args).ConfigureAwait(false);

    private static async Task<ServerExit> RunUntilStoppedAsync(string[] args)
    {
        try
        {
            var options = ServerCommandLine.Parse(args);
            if (options is null)
            {
                await Console.Out.WriteAsync(ServerCommandLine.Help).ConfigureAwait(false);
                return ServerExit.Stopped;
            }
            var app = Build(options);
            await using (app.ConfigureAwait(false))
            {
                try
                {
                    await app.RunAsync().ConfigureAwait(false);
                }
                catch (IOException e)
                {
                    // Kestrel cannot bind (address in use, no permission): the --urls value is at fault.
                    throw new UserInputException($"--urls {options.Urls}: {e.Message}", e);
                }
            }
            return ServerExit.Stopped;
        }
        catch (Exception e) when (IsBadInput(e))
        {
            await Console.Error.WriteLineAsync($"error: {e.Message}").ConfigureAwait(false);
            return ServerExit.BadInput;
        }
        catch (Exception e)
        {
            await Console.Error.WriteLineAsync($"unexpected failure: {e}").ConfigureAwait(false);
            return ServerExit.Crashed;
        }
    }

    /// <summary>Joins the Orleans cluster of the --cluster-stores as a client (membership in Redis); the host holds the connection.</summary>
    /// <exception cref="UserInputException">The cluster cannot be reached: the message names --cluster-redis and --cluster-id.</exception>
    private static IHost JoinCluster(ServerOptions options)
    {
        try
        {
            return ClusterClient.StartAsync(options.ClusterRedis!, options.ClusterId, logging => logging.SetMinimumLevel(LogLevel.Warning)).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new UserInputException($"--cluster-redis {options.ClusterRedis} (--cluster-id {options.ClusterId}): cannot join the cluster: {e.Message}; " +
                "start redis-server and at least one silo (onnx-attribution-cluster silo) first", e);
        }
    }

    /// <summary>Errors that come from the options or the files they name, not from a bug.</summary>
    private static bool IsBadInput(Exception e) =>
        e is AttributionException or OnnxGraphException or FileNotFoundException or DirectoryNotFoundException;

    /// <summary>
    /// Builds the server: every store opened (and logged) once, endpoints mapped. Start it with <c>StartAsync</c> or
    /// <c>RunAsync</c>; the stores are closed when it stops.
    /// </summary>
    /// <exception cref="AttributionException">A store or model is missing, damaged, or they do not belong together.</exception>
    public static WebApplication Build(ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var limits = options.Limits;
        var access = options.Access;
        // The server's own settings come in through options; Logging:… and Kestrel:… of the same configuration apply too.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        if (options.Configuration is not null)
        {
            builder.Configuration.AddConfiguration(options.Configuration);
        }
        builder.WebHost.UseUrls(options.Urls);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = limits.MaxBodyBytes;
            // Room above the URL limit, so that a long URL reaches the middleware and gets a JSON 414 naming the limit.
            kestrel.Limits.MaxRequestLineSize = limits.MaxUrlLength + 8192;
        });
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = options.DrainTimeout);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        if (options.LogFormat == "json")
        {
            builder.Logging.ClearProviders();
            builder.Logging.AddJsonConsole();
        }
        if (access.RequestsPerSecond > 0)
        {
            builder.Services.AddRateLimiter(rate =>
            {
                rate.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context => IsProbe(context.Request.Path)
                    ? RateLimitPartition.GetNoLimiter("probes")
                    : RateLimitPartition.GetTokenBucketLimiter(Caller(context), _ => TokenBucket(access)));
                rate.OnRejected = (rejected, cancel) => RejectRate(rejected, access, cancel);
            });
        }
        AddMetrics(builder);
        var app = builder.Build();
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("OnnxAttribution.Server");
        var accessLog = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("OnnxAttribution.Server.Access");
        var metrics = new ServerMetrics(app.Services.GetRequiredService<IMeterFactory>());
        var stores = new Dictionary<string, StoreSlot>(StringComparer.Ordinal);
        IHost? clusterClient = null;
        try
        {
            var cluster = options.ClusterGrains;
            if (cluster is null && options.Stores.Any(s => s.Cluster))
            {
                clusterClient = JoinCluster(options);
                cluster = ClusterClient.Of(clusterClient);
            }
            foreach (var spec in options.Stores)
            {
                var clock = Stopwatch.StartNew();
                var store = ServedStore.Open(spec, options.ModelDirectory, options.Session, limits, metrics, cluster);
                var slot = new StoreSlot(store, spec);
                stores.Add(spec.Name, slot);
                metrics.AddStore(() => slot.Current);
                store.WarmUp();
                var i = store.Info;
                log.LogInformation("store '{Name}': {Method}, {Rows} rows, dim {Dim}, {Channels}×{Height}×{Width}, {Location}; opened and warmed up in {Ms:F0} ms",
                    i.Name, i.Method, i.Rows, i.Dim?.ToString(CultureInfo.InvariantCulture) ?? "-", i.Channels, i.ImageSize, i.ImageSize, store.Location, clock.Elapsed.TotalMilliseconds);
            }
        }
        catch
        {
            foreach (var store in stores.Values)
            {
                store.Dispose();
            }
            clusterClient?.Dispose();
            ((IDisposable)app).Dispose();
            throw;
        }
        if (access.ApiKeys.Count == 0 && !options.LoopbackOnly)
        {
            log.LogWarning("listening on {Urls}, beyond loopback, without API keys (--allow-anonymous): anyone who reaches it can use it", options.Urls);
        }
        // SIGTERM / Ctrl+C: refuse new work (503, not ready) while in-flight requests finish; after --drain-timeout Kestrel
        // aborts them, which cancels their sampling and scans.
        // Disposed when the application stops (below), not here: the watcher runs as long as the server.
        var stopWatching = new CancellationTokenSource();
        var watcher = new StoreWatcher(stores.Values, spec => ServedStore.Open(spec, options.ModelDirectory, options.Session, limits, metrics),
            log, options.ReloadInterval);
        var watching = Task.CompletedTask;
        app.Lifetime.ApplicationStarted.Register(() => watching = Task.Run(() => watcher.RunAsync(stopWatching.Token)));
        app.Lifetime.ApplicationStopping.Register(() =>
        {
            stopWatching.Cancel();
            watching.Wait(TimeSpan.FromSeconds(30));
            stopWatching.Dispose();
            foreach (var slot in stores.Values)
            {
                slot.Current.BeginDrain();
            }
        });
        app.Lifetime.ApplicationStopped.Register(() =>
        {
            foreach (var store in stores.Values)
            {
                store.Dispose();
            }
            if (clusterClient is not null)
            {
                clusterClient.StopAsync(TimeSpan.FromSeconds(5)).GetAwaiter().GetResult();
                clusterClient.Dispose();
            }
        });

        var keys = access.ApiKeys.Select(k => SHA256.HashData(Encoding.UTF8.GetBytes(k))).ToList();
        app.Use((context, next) => Observe(context, next, metrics, accessLog));
        app.Use((context, next) => HandleErrors(context, next, log));
        app.Use((context, next) => CheckUrlLength(context, next, limits.MaxUrlLength));
        app.Use((context, next) => Authenticate(context, next, keys));
        if (access.RequestsPerSecond > 0)
        {
            app.UseRateLimiter();
        }
        app.UseRouting();
        app.MapGet("/healthz", () => new HealthResponse("ok"));
        app.MapGet("/readyz", () =>
        {
            var reasons = stores.Values.SelectMany(s => s.Current.NotReadyReasons()).ToList();
            return reasons.Count == 0
                ? Results.Json(new ReadyResponse("ready", reasons))
                : Results.Json(new ReadyResponse("not ready", reasons), statusCode: StatusCodes.Status503ServiceUnavailable);
        });
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapGet("/stores", () => new StoresResponse(stores.Values.Select(s => s.Current.Info).ToList()));
        app.MapPost("/stores/{name}/attribute", (string name, HttpContext context) => Attribute(stores, name, context, limits));
        ReportEndpoints.Map(app, stores, options);
        UiEndpoints.Map(app);
        return app;
    }

    /// <summary>
    /// /metrics: the server's meter (<see cref="ServerMetrics"/>), read by OpenTelemetry and written by its Prometheus exporter
    /// (mapped with the endpoints). The meter is enabled for this application's listeners only (<see cref="MeterScope.Local"/>:
    /// meters made by its own <see cref="IMeterFactory"/>), not by name for the whole process as <c>AddMeter</c> would, so that
    /// two servers in one process each count their own requests (<c>ServerMetricsTests</c>). Scope labels are left out (one
    /// meter: they would only lengthen every series); no cached answer, so a scrape sees the requests before it.
    /// </summary>
    private static void AddMetrics(WebApplicationBuilder builder)
    {
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("onnx-attribution-server"))
            .WithMetrics(metrics => metrics.AddPrometheusExporter(prometheus =>
                (prometheus.ScopeInfoEnabled, prometheus.ScrapeResponseCacheDurationMilliseconds) = (false, 0)));
        builder.Metrics.EnableMetrics(ServerMetrics.MeterName, instrumentName: null, listenerName: null, MeterScope.Local);
    }

    private static Task<IResult> Attribute(Dictionary<string, StoreSlot> stores, string name, HttpContext context, ServerLimits limits) =>
        StoreRequests.Leased(stores, name, store => StoreRequests.WithTimeout(store, context, limits, async cancel =>
        {
            int top = AttributeRequestReader.Top(context.Request.Query);
            var clock = Stopwatch.StartNew();
            var input = await AttributeRequestReader.ReadAsync(context.Request, store, limits, cancel).ConfigureAwait(false);
            return Results.Ok(await store.AttributeAsync(input, top, clock.Elapsed.TotalMilliseconds, cancel).ConfigureAwait(false));
        }));

    /// <summary>/healthz and /readyz: open to probes without a key and never rate-limited.</summary>
    private static bool IsProbe(PathString path) => path == "/healthz" || path == "/readyz";

    /// <summary>Who sent the request, for rate limits and the access log: the API key's number, or the client address.</summary>
    private static string Caller(HttpContext context) =>
        context.Items.TryGetValue(nameof(Caller), out var caller) && caller is string s ? s : $"ip:{context.Connection.RemoteIpAddress}";

    private static TokenBucketRateLimiterOptions TokenBucket(AccessOptions access)
    {
        double rate = access.RequestsPerSecond;
        // Whole tokens per period: the rate itself per second, or one token every 1/rate s below one per second.
        var (tokens, period) = rate >= 1 ? ((int)Math.Round(rate), TimeSpan.FromSeconds(1)) : (1, TimeSpan.FromSeconds(1 / rate));
        return new TokenBucketRateLimiterOptions
        {
            TokenLimit = access.Burst > 0 ? access.Burst : Math.Max(1, (int)Math.Ceiling(2 * rate)),
            TokensPerPeriod = tokens,
            ReplenishmentPeriod = period,
            QueueLimit = 0,
            AutoReplenishment = true,
        };
    }

    private static async ValueTask RejectRate(OnRejectedContext rejected, AccessOptions access, CancellationToken cancel)
    {
        var context = rejected.HttpContext;
        int seconds = rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)) : 1;
        context.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        await Results.Json(
            new ErrorResponse($"rate limit: {access.RequestsPerSecond.ToString(CultureInfo.InvariantCulture)} requests/s for {Caller(context)} (--rate-limit); retry after {seconds} s"),
            statusCode: StatusCodes.Status429TooManyRequests).ExecuteAsync(context).ConfigureAwait(false);
    }

    /// <summary>
    /// With API keys configured, every request but the probes needs one (<c>Authorization: Bearer KEY</c> or
    /// <c>X-Api-Key: KEY</c>), compared in constant time; the key's number (not the key) names the caller.
    /// </summary>
    private static Task Authenticate(HttpContext context, RequestDelegate next, List<byte[]> keys)
    {
        // The auditor's page itself holds no data (the key is typed into it); everything it asks for needs the key.
        if (keys.Count == 0 || IsProbe(context.Request.Path) || UiEndpoints.IsPage(context.Request.Path))
        {
            return next(context);
        }
        string? given = context.Request.Headers["X-Api-Key"].FirstOrDefault();
        string? authorization = context.Request.Headers.Authorization.FirstOrDefault();
        if (given is null && authorization is not null && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            given = authorization["Bearer ".Length..].Trim();
        }
        if (given is null)
        {
            throw new HttpProblem(StatusCodes.Status401Unauthorized, "an API key is required: send 'Authorization: Bearer KEY' or 'X-Api-Key: KEY'");
        }
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(given));
        int match = -1;
        for (int k = 0; k < keys.Count; k++)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, keys[k]))
            {
                match = k;
            }
        }
        if (match < 0)
        {
            throw new HttpProblem(StatusCodes.Status401Unauthorized, "the API key is not one this server accepts");
        }
        context.Items[nameof(Caller)] = $"key#{match + 1}";
        return next(context);
    }

    /// <summary>414 as JSON for a request target longer than <see cref="ServerLimits.MaxUrlLength"/>.</summary>
    private static Task CheckUrlLength(HttpContext context, RequestDelegate next, int maxLength)
    {
        int length = context.Features.Get<IHttpRequestFeature>()?.RawTarget.Length ?? 0;
        return length > maxLength
            ? throw new HttpProblem(StatusCodes.Status414RequestUriTooLong, $"the URL has {length} characters; at most {maxLength} (--max-url-length)")
            : next(context);
    }

    /// <summary>
    /// Counts and times every request for /metrics and writes one access-log line for it (structured: each field a
    /// property of the log entry). Statuses answered without a body (404 no route, 405 wrong method) get a JSON error.
    /// </summary>
    internal static async Task Observe(HttpContext context, RequestDelegate next, ServerMetrics metrics, ILogger access)
    {
        long start = Stopwatch.GetTimestamp();
        try
        {
            await next(context).ConfigureAwait(false);
            var response = context.Response;
            if (response.StatusCode >= 400 && !response.HasStarted && response.ContentType is null && !context.RequestAborted.IsCancellationRequested)
            {
                await Results.Json(new ErrorResponse(StatusMessage(context)), statusCode: response.StatusCode).ExecuteAsync(context).ConfigureAwait(false);
            }
        }
        finally
        {
            var elapsed = Stopwatch.GetElapsedTime(start);
            string route = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "unmatched";
            // 499 (nginx's "client closed request"): the client went away before its answer.
            int status = context.RequestAborted.IsCancellationRequested && !context.Response.HasStarted ? 499 : context.Response.StatusCode;
            metrics.Request(route, context.Request.Method, status, elapsed);
            string path = context.Request.Path.Value ?? "";
            access.LogInformation(
                "access method={Method} path={Path} route={Route} status={Status} ms={Ms} caller={Caller} bytes_in={BytesIn}",
                context.Request.Method, path.Length > 200 ? path[..200] + "…" : path, route, status,
                Math.Round(elapsed.TotalMilliseconds, 1), Caller(context), context.Request.ContentLength ?? 0);
        }
    }

    private static string StatusMessage(HttpContext context)
    {
        var request = context.Request;
        return context.Response.StatusCode switch
        {
            StatusCodes.Status404NotFound => $"no endpoint {request.Method} {request.Path}; endpoints: GET /healthz, /readyz, /metrics, /stores, /ui, " +
                "/stores/{name}/report?seed=N, /stores/{name}/rows/{row}.png, /stores/{name}/rows/{row}, /stores/{name}/query.png?seed=N; " +
                "POST /stores/{name}/attribute, /stores/{name}/report",
            StatusCodes.Status405MethodNotAllowed => $"{request.Method} is not allowed on {request.Path}" + (context.Response.Headers.Allow is { Count: > 0 } allow ? $"; allowed: {allow}" : ""),
            int status => $"{status} {Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status)}",
        };
    }

    /// <summary>
    /// Errors as <c>{"error": …}</c>: the request's own faults (bad fields, a PNG that does not decode, limits) with
    /// their status, a store that gives a non-finite score 500 with that said, anything else 500 without details (they
    /// are logged). A request whose client went away gets nothing.
    /// </summary>
    internal static async Task HandleErrors(HttpContext context, RequestDelegate next, ILogger log)
    {
        try
        {
            await next(context).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            log.LogDebug("{Method} {Path}: the client went away", context.Request.Method, context.Request.Path);
        }
        catch (Exception e) when (!context.Response.HasStarted)
        {
            var (status, message) = e switch
            {
                HttpProblem problem => (problem.Status, problem.Message),
                BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } large => (large.StatusCode, $"request body too large: {large.Message} (--max-body-bytes)"),
                BadHttpRequestException bad => (bad.StatusCode, bad.Message),
                UserInputException input => (StatusCodes.Status400BadRequest, input.Message),
                ClusterUnavailableException none => (StatusCodes.Status503ServiceUnavailable, none.Message),
                AttributionException damaged => (StatusCodes.Status500InternalServerError, damaged.Message),
                _ => (StatusCodes.Status500InternalServerError, $"internal error (request {context.TraceIdentifier}); the server's log has the details"),
            };
            if (status >= StatusCodes.Status500InternalServerError && status != StatusCodes.Status503ServiceUnavailable)
            {
                log.LogError(e, "{Method} {Path} failed (request {Id})", context.Request.Method, context.Request.Path, context.TraceIdentifier);
            }
            context.Response.Clear();
            if (e is HttpProblem { RetryAfterSeconds: { } seconds })
            {
                context.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
            }
            else if (e is ClusterUnavailableException)
            {
                context.Response.Headers.RetryAfter = "5";
            }
            if (status == StatusCodes.Status401Unauthorized)
            {
                context.Response.Headers.WWWAuthenticate = "Bearer";
            }
            await Results.Json(new ErrorResponse(message), statusCode: status).ExecuteAsync(context).ConfigureAwait(false);
        }
    }
}
