using System.Diagnostics;
using System.Text.Json.Serialization;
using OnnxAttribution.Core;
using OnnxAttribution.Onnx;

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
        // The server reads only its own options; ASP.NET Core's configuration still comes from ASPNETCORE_* variables.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.WebHost.UseUrls(options.Urls);
        // One line per request at Information costs time on the hot path; requests are logged when they fail.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Services.ConfigureHttpJsonOptions(json =>
            json.SerializerOptions.NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals); // a NaN score is written, not a 500
        var app = builder.Build();
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("OnnxAttribution.Server");
        var stores = new Dictionary<string, ServedStore>(StringComparer.Ordinal);
        try
        {
            foreach (var spec in options.Stores)
            {
                var clock = Stopwatch.StartNew();
                var store = ServedStore.Open(spec, options.ModelDirectory, options.Session);
                stores.Add(spec.Name, store);
                store.WarmUp();
                var i = store.Info;
                log.LogInformation("store '{Name}': {Method}, {Rows} rows, dim {Dim}, model {Model} ({Channels}×{Height}×{Width}), {Directory}; opened and warmed up in {Ms:F0} ms",
                    i.Name, i.Method, i.Rows, i.Dim?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-", i.ModelDirectory, i.Channels, i.ImageSize, i.ImageSize, i.Directory, clock.Elapsed.TotalMilliseconds);
            }
        }
        catch
        {
            foreach (var store in stores.Values)
            {
                store.Dispose();
            }
            ((IDisposable)app).Dispose();
            throw;
        }
        app.Lifetime.ApplicationStopped.Register(() =>
        {
            foreach (var store in stores.Values)
            {
                store.Dispose();
            }
        });

        app.Use((context, next) => HandleErrors(context, next, log));
        app.MapGet("/healthz", () => new HealthResponse("ok"));
        app.MapGet("/stores", () => new StoresResponse(stores.Values.Select(s => s.Info).ToList()));
        app.MapPost("/stores/{name}/attribute", (string name, HttpContext context) => Attribute(stores, name, context));
        return app;
    }

    private static async Task<IResult> Attribute(Dictionary<string, ServedStore> stores, string name, HttpContext context)
    {
        if (!stores.TryGetValue(name, out var store))
        {
            return Results.Json(new ErrorResponse($"no store named '{name}'; stores: {string.Join(", ", stores.Keys)}"), statusCode: StatusCodes.Status404NotFound);
        }
        var cancel = context.RequestAborted;
        int top = AttributeRequestReader.Top(context.Request.Query);
        var clock = Stopwatch.StartNew();
        var input = await AttributeRequestReader.ReadAsync(context.Request, store, cancel).ConfigureAwait(false);
        return Results.Ok(await store.AttributeAsync(input, top, clock.Elapsed.TotalMilliseconds, cancel).ConfigureAwait(false));
    }

    /// <summary>
    /// Errors as <c>{"error": …}</c>: the request's own faults (bad fields, a PNG that does not decode) with their status,
    /// anything else 500 and logged. A request whose client went away gets nothing.
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
                BadHttpRequestException bad => (bad.StatusCode, bad.Message),
                UserInputException input => (StatusCodes.Status400BadRequest, input.Message),
                _ => (StatusCodes.Status500InternalServerError, $"{e.GetType().Name}: {e.Message}"),
            };
            if (status >= StatusCodes.Status500InternalServerError)
            {
                log.LogError(e, "{Method} {Path} failed", context.Request.Method, context.Request.Path);
            }
            context.Response.Clear();
            await Results.Json(new ErrorResponse(message), statusCode: status).ExecuteAsync(context).ConfigureAwait(false);
        }
    }
}
