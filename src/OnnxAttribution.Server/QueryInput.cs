using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Net.Http.Headers;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Imaging;
using OnnxAttribution.Runtime.Sampling;

namespace OnnxAttribution.Server;

/// <summary>What one request asks to attribute, checked against the store's model: images ready to score, or seeds to generate from.</summary>
internal abstract record QueryInput
{
    private QueryInput()
    {
    }

    /// <summary>The number of queries.</summary>
    public abstract int Count { get; }

    /// <summary>Images given in the request (floats or a decoded PNG), in the model's geometry.</summary>
    public sealed record Given(IReadOnlyList<AttributionQuery> Queries) : QueryInput
    {
        public override int Count => Queries.Count;
    }

    /// <summary>Seeds to sample the queries from with the store's model, with their trajectories.</summary>
    public sealed record Seeds(long[] Values, SamplerKind Sampler, int Steps, QueryCondition? Condition = null) : QueryInput
    {
        public override int Count => Values.Length;
    }
}

/// <summary>
/// Reads an attribute request: the <c>top</c> parameter and the body (JSON or a raw PNG). Every problem is a
/// <see cref="BadHttpRequestException"/> whose message names the field and what was expected.
/// </summary>
internal static class AttributeRequestReader
{
    /// <summary>Rows per query when the request does not say.</summary>
    public const int DefaultTop = 16;

    /// <summary>Sampling steps of a seed query when the request does not say (as <c>attribute --seed</c>).</summary>
    public const int DefaultSteps = 50;

    /// <summary>The largest pixel value accepted (images are in [-1, 1]; beyond this a value is a mistake, not a bright pixel).</summary>
    public const float MaxPixelMagnitude = 1e6f;

    /// <summary>Web defaults (camelCase, case-insensitive), and a misspelt field is an error rather than ignored.</summary>
    private static readonly JsonSerializerOptions RequestJson = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    /// <summary>The <c>top</c> query parameter: a whole number ≥ 1, <see cref="DefaultTop"/> when absent.</summary>
    /// <exception cref="BadHttpRequestException">It is given twice, is not a whole number, or is below 1.</exception>
    public static int Top(IQueryCollection query)
    {
        ArgumentNullException.ThrowIfNull(query);
        if (!query.TryGetValue("top", out var values))
        {
            return DefaultTop;
        }
        if (values.Count != 1 || !int.TryParse(values[0], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int top) || top < 1)
        {
            throw Bad($"query parameter 'top' is '{values}'; expected one whole number ≥ 1");
        }
        return top;
    }

    /// <summary>Reads and checks the body: <c>application/json</c> (<see cref="AttributeRequest"/>) or <c>image/png</c>.</summary>
    /// <exception cref="BadHttpRequestException">400 for malformed input or one beyond the limits, 413 for a body too large, 415 for another content type.</exception>
    public static async Task<QueryInput> ReadAsync(HttpRequest request, ServedStore store, ServerLimits limits, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(limits);
        if (request.HasJsonContentType())
        {
            AttributeRequest? body;
            try
            {
                body = await JsonSerializer.DeserializeAsync<AttributeRequest>(request.Body, RequestJson, cancel).ConfigureAwait(false);
            }
            catch (JsonException e)
            {
                throw Bad($"request body at {e.Path ?? "$"}: {Describe(e)}; send one of 'images', 'png' or 'seeds'");
            }
            return FromJson(body ?? throw Bad("request body: null; send one of 'images', 'png' or 'seeds'"), store, limits);
        }
        if (MediaTypeHeaderValue.TryParse(request.ContentType, out var type) && type.MediaType.Equals("image/png", StringComparison.OrdinalIgnoreCase))
        {
            using var buffer = new MemoryStream();
            await request.Body.CopyToAsync(buffer, cancel).ConfigureAwait(false);
            var png = new QueryInput.Given([Decode(buffer.GetBuffer().AsSpan(0, checked((int)buffer.Length)), "request body (image/png)", "body", store, limits)]);
            return QueryConditions.Apply(png, store, new QueryConditions.Given(QueryConditions.LabelParameter(request.Query), null, null,
                QueryConditions.PromptParameter(request.Query), null), " (query parameter)");
        }
        throw new BadHttpRequestException(
            $"Content-Type '{request.ContentType}': send application/json ('images', 'png' or 'seeds') or image/png", StatusCodes.Status415UnsupportedMediaType);
    }

    /// <summary>What is wrong with a JSON body, in the request's terms: System.Text.Json's messages name .NET types and members.</summary>
    private static string Describe(JsonException e)
    {
        string message = e.Message;
        if (message.Contains("could not be mapped", StringComparison.Ordinal))
        {
            // "The JSON property 'image' could not be mapped to any .NET member …": the name between the first quotes.
            int open = message.IndexOf('\'', StringComparison.Ordinal);
            int close = open < 0 ? -1 : message.IndexOf('\'', open + 1);
            string name = close > open ? message[open..(close + 1)] : "a field";
            return $"unknown field {name}; the fields are 'images', 'png', 'seeds', 'sampler', 'steps', 'label', 'labels' and 'guidance'";
        }
        if (message.Contains("could not be converted", StringComparison.Ordinal))
        {
            return "a value of the wrong type (numbers in 'images', whole numbers in 'seeds' and 'steps', strings in 'png' and 'sampler')";
        }
        // A syntax error: the parser's message says what and where, without type names ("… is an invalid start of a value").
        int cut = message.IndexOf(" Path: ", StringComparison.Ordinal);
        return $"not valid JSON ({(cut > 0 ? message[..cut] : message)})";
    }

    /// <summary>Checks a JSON request against the store's model.</summary>
    /// <exception cref="BadHttpRequestException">None or several of images/png/seeds, or a field that does not fit the model.</exception>
    public static QueryInput FromJson(AttributeRequest body, ServedStore store, ServerLimits limits)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(limits);
        return QueryConditions.Apply(Queries(body, store, limits), store, new QueryConditions.Given(body.Label, body.Labels, body.Guidance, body.Prompt, body.Prompts));
    }

    private static QueryInput Queries(AttributeRequest body, ServedStore store, ServerLimits limits)
    {
        var given = new[] { ("images", body.Images is not null), ("png", body.Png is not null), ("seeds", body.Seeds is not null) }
            .Where(f => f.Item2).Select(f => $"'{f.Item1}'").ToList();
        if (given.Count != 1)
        {
            throw Bad($"give exactly one of 'images', 'png' or 'seeds'; got {(given.Count == 0 ? "none" : string.Join(" and ", given))}");
        }
        if (body.Seeds is null && (body.Sampler is not null || body.Steps is not null))
        {
            throw Bad($"field '{(body.Sampler is not null ? "sampler" : "steps")}' goes with 'seeds' only");
        }
        if (body.Images is { } images)
        {
            return new QueryInput.Given(Images(images, store, limits));
        }
        if (body.Png is { } png)
        {
            byte[] bytes;
            try
            {
                bytes = Convert.FromBase64String(png);
            }
            catch (FormatException)
            {
                throw Bad($"field 'png': not valid base64 ({png.Length} characters)");
            }
            return new QueryInput.Given([Decode(bytes, "field 'png'", "png", store, limits)]);
        }
        return Seeds(body.Seeds!, body.Sampler, body.Steps, store, limits);
    }

    private static List<AttributionQuery> Images(float[][] images, ServedStore store, ServerLimits limits)
    {
        CheckCount("images", images.Length, limits);
        var info = store.Info;
        var queries = new List<AttributionQuery>(images.Length);
        for (int i = 0; i < images.Length; i++)
        {
            var image = images[i] ?? throw Bad($"field 'images[{i}]' is null; expected {store.ImageLength} floats");
            if (image.Length != store.ImageLength)
            {
                throw Bad($"field 'images[{i}]' has {image.Length} values; the model of store '{store.Name}' takes C×H×W = " +
                    $"{info.Channels}×{info.ImageSize}×{info.ImageSize} = {store.ImageLength}");
            }
            CheckFinite(image, i);
            queries.Add(new AttributionQuery($"images[{i}]", image));
        }
        return queries;
    }

    /// <summary>Refuses NaN, ±Infinity and values beyond <see cref="MaxPixelMagnitude"/>: they would score as NaN or overflow.</summary>
    private static void CheckFinite(float[] image, int index)
    {
        for (int j = 0; j < image.Length; j++)
        {
            if (!(Math.Abs(image[j]) <= MaxPixelMagnitude))
            {
                throw Bad($"field 'images[{index}][{j}]' is {image[j].ToString(CultureInfo.InvariantCulture)}; expected a finite value in [-1, 1] (at most {MaxPixelMagnitude:0e0} in magnitude)");
            }
        }
    }

    private static AttributionQuery Decode(ReadOnlySpan<byte> encoded, string source, string label, ServedStore store, ServerLimits limits)
    {
        try
        {
            // On the header alone, before decoding: a small upload can declare a huge image.
            var (width, height) = PngImage.ReadSize(encoded, source);
            long side = (long)limits.PngSideFactor * store.Info.ImageSize;
            if (width > side || height > side)
            {
                throw Bad($"{source}: a {width}×{height} image; store '{store.Name}' takes images of at most {side}×{side} " +
                    $"({limits.PngSideFactor} × its model's side {store.Info.ImageSize}, --png-side-factor); resize it first");
            }
            var (pixels, _, _, _) = PngImage.Read(encoded, source, store.Info.Channels, store.Info.ImageSize);
            return new AttributionQuery(label, pixels);
        }
        catch (UserInputException e)
        {
            throw Bad(e.Message);
        }
    }

    private static QueryInput.Seeds Seeds(long[] seeds, string? samplerName, int? stepCount, ServedStore store, ServerLimits limits)
    {
        CheckCount("seeds", seeds.Length, limits);
        var sampler = SamplerKind.Ddim;
        if (samplerName is not null)
        {
            var names = Enum.GetNames<SamplerKind>();
            var match = names.FirstOrDefault(n => n.Equals(samplerName, StringComparison.OrdinalIgnoreCase))
                ?? throw Bad($"field 'sampler' is '{samplerName}'; known: {string.Join(", ", names.Select(n => n.ToLowerInvariant()))}");
            sampler = Enum.Parse<SamplerKind>(match);
        }
        int steps = stepCount ?? DefaultSteps;
        if (steps < 1 || steps > store.TrainTimesteps)
        {
            throw Bad($"field 'steps' is {steps}; expected 1..{store.TrainTimesteps} (the model's timesteps)");
        }
        if ((long)seeds.Length * steps > limits.MaxSeedSteps)
        {
            throw Bad($"fields 'seeds' × 'steps' = {seeds.Length} × {steps} = {(long)seeds.Length * steps} sampling steps; " +
                $"at most {limits.MaxSeedSteps} per request (--max-seed-steps): send fewer seeds or steps, or split the request");
        }
        return new QueryInput.Seeds(seeds, sampler, steps);
    }

    private static void CheckCount(string field, int count, ServerLimits limits)
    {
        if (count < 1 || count > limits.MaxQueries)
        {
            throw Bad($"field '{field}' has {count} entries; expected 1..{limits.MaxQueries} queries per request (--max-queries)");
        }
    }

    private static BadHttpRequestException Bad(string message) => new(message, StatusCodes.Status400BadRequest);
}
