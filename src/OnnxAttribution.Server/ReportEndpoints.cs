using System.Diagnostics;
using System.Globalization;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Imaging;
using OnnxAttribution.Core.Reporting;

namespace OnnxAttribution.Server;

/// <summary>
/// The audit report over HTTP (<c>GET /stores/{name}/report?seed=N</c>, <c>POST /stores/{name}/report</c> with a PNG) and what
/// the auditor's page shows beside the JSON rankings: a training row's image and a seed's query image, as PNG.
/// </summary>
internal static class ReportEndpoints
{
    /// <summary>Rows a report lists when the request does not say.</summary>
    public const int DefaultTop = 10;

    /// <summary>The most rows a report lists.</summary>
    public const int MaxTop = 1000;

    public static void Map(WebApplication app, Dictionary<string, StoreSlot> stores, ServerOptions options)
    {
        var limits = options.Limits;
        bool keys = options.Access.ApiKeys.Count > 0;
        app.MapGet("/stores/{name}/report", (string name, HttpContext context) =>
            StoreRequests.Leased(stores, name, store => StoreRequests.WithTimeout(store, context, limits, cancel => Report(store, context, limits, keys, cancel))));
        app.MapPost("/stores/{name}/report", (string name, HttpContext context) =>
            StoreRequests.Leased(stores, name, store => StoreRequests.WithTimeout(store, context, limits, cancel => Report(store, context, limits, keys, cancel))));
        app.MapGet("/stores/{name}/rows/{row}.png", (string name, string row) => StoreRequests.Leased(stores, name, store => Task.FromResult(RowPng(store, row))));
        app.MapGet("/stores/{name}/rows/{row}", (string name, string row) => StoreRequests.Leased(stores, name, store => Task.FromResult(Results.Ok(RowInfo(store, row)))));
        app.MapGet("/stores/{name}/query.png", (string name, HttpContext context) =>
            StoreRequests.Leased(stores, name, store => StoreRequests.WithTimeout(store, context, limits, cancel => QueryPng(store, context, limits, cancel))));
    }

    private static async Task<IResult> Report(ServedStore store, HttpContext context, ServerLimits limits, bool keys, CancellationToken cancel)
    {
        if (store.IsCluster)
        {
            throw new HttpProblem(StatusCodes.Status400BadRequest,
                $"store '{store.Name}' is served by the cluster: its shards answer top rows only, and a report needs every row's score");
        }
        var request = context.Request;
        int top = Top(request.Query);
        var clock = Stopwatch.StartNew();
        var (input, origin) = await ReadQuery(store, context, limits, cancel).ConfigureAwait(false);
        var full = new FullScores();
        await store.AttributeAsync(input, top, clock.Elapsed.TotalMilliseconds, cancel, full).ConfigureAwait(false);
        // The version that answered, which a change since it was opened does not alter (the files on disk may be newer).
        var provenance = ReportProvenance.Read(store.StoreDirectory, store.Info.Method, Reproduce(context, keys)) with
        {
            StoreVersion = store.Info.Version,
            StoreVersionId = store.Info.VersionId,
        };
        var query = full.Queries![0];
        var report = AuditReport.Create(store.Name, query, origin, full.Scores, top, store.TrainingData, provenance, store.Info.ImageSize) with
        {
            Condition = query.Condition,
            Prompt = store.Info.Condition?.PromptOf(query.Condition),
        };
        return Results.Content(AuditReportHtml.Render(report), "text/html; charset=utf-8");
    }

    /// <summary>The report's one query: a seed (GET, with optional sampler and steps) or the body (POST, as /attribute reads it).</summary>
    private static async Task<(QueryInput Input, QueryOrigin Origin)> ReadQuery(ServedStore store, HttpContext context, ServerLimits limits, CancellationToken cancel)
    {
        var request = context.Request;
        if (HttpMethods.IsGet(request.Method))
        {
            var seeds = (QueryInput.Seeds)AttributeRequestReader.FromJson(SeedRequest(request.Query), store, limits);
            return (seeds, QueryOrigin.FromSeed(seeds.Values[0], seeds.Sampler, seeds.Steps));
        }
        string? name = request.Query["name"];
        if (name is { Length: > 255 })
        {
            throw new HttpProblem(StatusCodes.Status400BadRequest, $"query parameter 'name' has {name.Length} characters; at most 255 (the uploaded file's name)");
        }
        var input = await AttributeRequestReader.ReadAsync(request, store, limits, cancel).ConfigureAwait(false);
        if (input.Count != 1)
        {
            throw new HttpProblem(StatusCodes.Status400BadRequest, $"a report is of one query; the body holds {input.Count}");
        }
        return input is QueryInput.Seeds s
            ? (s, QueryOrigin.FromSeed(s.Values[0], s.Sampler, s.Steps))
            : (input, QueryOrigin.FromFile(string.IsNullOrWhiteSpace(name) ? "uploaded image" : name));
    }

    /// <summary>The seed of a GET: <c>seed</c> (required, a whole number), <c>sampler</c> and <c>steps</c> as the JSON body's fields.</summary>
    private static AttributeRequest SeedRequest(IQueryCollection query)
    {
        string? seedText = query["seed"];
        if (seedText is null || !long.TryParse(seedText, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long seed))
        {
            throw new HttpProblem(StatusCodes.Status400BadRequest, $"query parameter 'seed' is '{seedText ?? "(missing)"}'; expected a whole number");
        }
        int? steps = null;
        if (query["steps"] is { Count: > 0 } stepsText)
        {
            steps = int.TryParse(stepsText, NumberStyles.None, CultureInfo.InvariantCulture, out int n)
                ? n
                : throw new HttpProblem(StatusCodes.Status400BadRequest, $"query parameter 'steps' is '{stepsText}'; expected a whole number");
        }
        return new AttributeRequest(null, null, [seed], query["sampler"], steps, QueryConditions.LabelParameter(query), Prompt: QueryConditions.PromptParameter(query));
    }

    /// <summary>The <c>top</c> parameter: 1..<see cref="MaxTop"/>, <see cref="DefaultTop"/> when absent.</summary>
    private static int Top(IQueryCollection query)
    {
        int top = query.ContainsKey("top") ? AttributeRequestReader.Top(query) : DefaultTop;
        return top <= MaxTop
            ? top
            : throw new HttpProblem(StatusCodes.Status400BadRequest, $"query parameter 'top' is {top}; a report lists at most {MaxTop} rows");
    }

    /// <summary>The request again, as a curl command (the key left for the reader to fill in).</summary>
    private static string Reproduce(HttpContext context, bool keys)
    {
        var request = context.Request;
        string url = $"{request.Scheme}://{request.Host}{request.PathBase}{request.Path}{request.QueryString}";
        string key = keys ? " -H 'X-Api-Key: YOUR_KEY'" : "";
        return HttpMethods.IsGet(request.Method)
            ? $"curl -o report.html{key} '{url}'"
            : $"curl -o report.html{key} -X POST -H 'Content-Type: {request.ContentType}' --data-binary @QUERY_FILE '{url}'";
    }

    /// <summary>A training row's number and label (where the dataset has labels).</summary>
    private static RowResponse RowInfo(ServedStore store, string rowText)
    {
        var (row, data) = Row(store, rowText);
        return new RowResponse(store.Name, row, data.Labels?[checked((int)row)]);
    }

    /// <summary>A training row's image as PNG; 404 naming the row when the store has no such row.</summary>
    private static IResult RowPng(ServedStore store, string rowText)
    {
        var (row, data) = Row(store, rowText);
        var png = PngImage.Encode(data.Image(checked((int)row)), data.Channels, data.Height, data.Width);
        return Results.Bytes(png, "image/png");
    }

    /// <summary>The row a path names and the store's training images; 404 naming the row, or saying the images are unknown.</summary>
    private static (long Row, Core.Data.ImageDataset Data) Row(ServedStore store, string rowText)
    {
        if (!long.TryParse(rowText, NumberStyles.None, CultureInfo.InvariantCulture, out long row) || row >= store.Info.Rows)
        {
            throw new HttpProblem(StatusCodes.Status404NotFound, $"store '{store.Name}' has no row '{rowText}'; its rows are 0..{store.Info.Rows - 1}");
        }
        var data = store.TrainingData
            ?? throw new HttpProblem(StatusCodes.Status404NotFound, $"store '{store.Name}': the training images of its rows are unknown (the store has no source.json)");
        return (row, data);
    }

    /// <summary>The query a seed makes (<c>?seed=N</c>, optional sampler and steps), as PNG: the image the seed's rankings are of.</summary>
    private static async Task<IResult> QueryPng(ServedStore store, HttpContext context, ServerLimits limits, CancellationToken cancel)
    {
        var input = AttributeRequestReader.FromJson(SeedRequest(context.Request.Query), store, limits);
        // The seed lane samples it as /attribute does; only its queries are wanted back, not every row's score.
        var sampled = new FullScores(wantsScores: false);
        await store.AttributeAsync(input, 1, 0, cancel, sampled).ConfigureAwait(false);
        AttributionQuery query = sampled.Queries![0];
        return Results.Bytes(PngImage.Encode(query.Image, store.Info.Channels, store.Info.ImageSize, store.Info.ImageSize), "image/png");
    }
}
