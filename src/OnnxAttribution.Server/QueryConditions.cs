using System.Globalization;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Runtime.Models;

namespace OnnxAttribution.Server;

/// <summary>
/// The condition of each query of a request to a store whose model is conditional: JSON fields <c>label</c> (one for every
/// query) or <c>labels</c> (one per query) for a class-conditional model, <c>prompt</c> or <c>prompts</c> for a text-conditioned
/// one, and <c>guidance</c> (seeds only); or the query parameter <c>label</c> / <c>prompt</c> of a PNG body. A conditional store
/// needs its kind; an unconditional one refuses them all. Problems are 400s naming the field.
/// </summary>
internal static class QueryConditions
{
    /// <summary>The condition fields of one request, as given.</summary>
    public sealed record Given(long? Label, long[]? Labels, double? Guidance, string? Prompt, string[]? Prompts);

    /// <summary><paramref name="input"/> with each query's condition set (given images) or the conditions to sample with (seeds).</summary>
    /// <param name="input">The queries.</param>
    /// <param name="store">The store asked.</param>
    /// <param name="given">The request's condition fields.</param>
    /// <param name="suffix">Appended to the single-value fields' names in messages (" (query parameter)" for a PNG body).</param>
    /// <exception cref="BadHttpRequestException">A condition is missing, wrong, of the wrong count, or given to a store that takes another.</exception>
    public static QueryInput Apply(QueryInput input, ServedStore store, Given given, string suffix = "")
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(given);
        var condition = store.Info.Condition;
        if (condition is null)
        {
            string? field = given.Label is not null ? "label" + suffix : given.Labels is not null ? "labels" : given.Prompt is not null ? "prompt" + suffix
                : given.Prompts is not null ? "prompts" : given.Guidance is not null ? "guidance" : null;
            return field is null ? input : throw Bad($"field '{field}': the model of store '{store.Name}' is unconditional; leave it out");
        }
        if (given.Guidance is not null && input is not QueryInput.Seeds)
        {
            throw Bad("field 'guidance' goes with 'seeds' only (a given image is attributed under its condition, whatever it was sampled with)");
        }
        var perQuery = condition.Kind == ConditionKind.Text
            ? PromptsOf(input.Count, condition, store, given, suffix)
            : LabelsOf(input.Count, condition, store, given, suffix);
        return input switch
        {
            QueryInput.Given images => new QueryInput.Given(images.Queries.Select((q, i) => q with { Condition = perQuery[i] }).ToList()),
            QueryInput.Seeds seeds => seeds with { Condition = new QueryCondition(perQuery, Guidance(given.Guidance, condition)) },
            _ => input,
        };
    }

    private static long[] LabelsOf(int count, ConditionSpec condition, ServedStore store, Given given, string suffix)
    {
        string range = $"0 … {condition.Classes - 1}";
        if (given.Prompt is not null || given.Prompts is not null)
        {
            throw Bad($"field '{(given.Prompt is not null ? "prompt" + suffix : "prompts")}': the model of store '{store.Name}' is conditioned on a " +
                $"class label ({range}), not a prompt; give 'label' or 'labels'");
        }
        var values = OneOrPerQuery(count, given.Label is not null, given.Label ?? 0, given.Labels, "label" + suffix, "labels", store, $"a class label ({range})");
        for (int i = 0; i < values.Length; i++)
        {
            if (values[i] < 0 || values[i] >= condition.Classes)
            {
                string field = given.Labels is null ? "label" + suffix : $"labels[{i}]";
                throw Bad($"field '{field}' is {values[i].ToString(CultureInfo.InvariantCulture)}; store '{store.Name}' takes class labels {range}");
            }
        }
        return values;
    }

    private static long[] PromptsOf(int count, ConditionSpec condition, ServedStore store, Given given, string suffix)
    {
        if (given.Label is not null || given.Labels is not null)
        {
            throw Bad($"field '{(given.Label is not null ? "label" + suffix : "labels")}': the model of store '{store.Name}' is conditioned on a " +
                "prompt, not a class label; give 'prompt' or 'prompts'");
        }
        var prompts = OneOrPerQuery(count, given.Prompt is not null, given.Prompt ?? "", given.Prompts, "prompt" + suffix, "prompts", store, $"a prompt ({condition.DescribeValues()})");
        var values = new long[prompts.Length];
        for (int i = 0; i < values.Length; i++)
        {
            string field = given.Prompts is null ? "prompt" + suffix : $"prompts[{i}]";
            try
            {
                values[i] = condition.EncodePrompt(prompts[i] ?? "", $"field '{field}'");
            }
            catch (UserInputException e)
            {
                throw Bad(e.Message);
            }
        }
        return values;
    }

    /// <summary>One value for every query, or one per query: exactly one of the two fields, the list of the right length.</summary>
    private static T[] OneOrPerQuery<T>(int count, bool hasOne, T one, T[]? each, string oneField, string eachField, ServedStore store, string what)
    {
        if (hasOne == (each is not null))
        {
            throw Bad(!hasOne
                ? $"field '{oneField}' is required: the model of store '{store.Name}' is conditioned on {what}; give '{oneField}' for every query or " +
                  $"'{eachField}', one per query"
                : $"give '{oneField}' or '{eachField}', not both");
        }
        if (each is not null && each.Length != count)
        {
            throw Bad($"field '{eachField}' has {each.Length} entries for {count} queries; give one per query (or '{oneField}' for all)");
        }
        return each ?? Enumerable.Repeat(one, count).ToArray();
    }

    private static double Guidance(double? guidance, ConditionSpec condition)
    {
        double w = guidance ?? 1.0;
        if (!double.IsFinite(w) || w < 0)
        {
            throw Bad($"field 'guidance' is {w.ToString(CultureInfo.InvariantCulture)}; expected a finite value ≥ 0 (1: the conditional prediction alone)");
        }
        if (w != 1.0 && condition.NullLabel is null)
        {
            throw Bad("field 'guidance': the model has no null condition, so classifier-free guidance cannot run; leave it out");
        }
        return w;
    }

    /// <summary>The query parameter <c>label</c>, when given.</summary>
    /// <exception cref="BadHttpRequestException">It is not one whole number.</exception>
    public static long? LabelParameter(IQueryCollection query)
    {
        ArgumentNullException.ThrowIfNull(query);
        if (!query.TryGetValue("label", out var values))
        {
            return null;
        }
        return values.Count == 1 && long.TryParse(values[0], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long label)
            ? label
            : throw Bad($"query parameter 'label' is '{values}'; expected one whole number");
    }

    /// <summary>The query parameter <c>prompt</c>, when given.</summary>
    /// <exception cref="BadHttpRequestException">It is given more than once.</exception>
    public static string? PromptParameter(IQueryCollection query)
    {
        ArgumentNullException.ThrowIfNull(query);
        if (!query.TryGetValue("prompt", out var values))
        {
            return null;
        }
        return values.Count == 1 ? values[0] ?? "" : throw Bad($"query parameter 'prompt' is given {values.Count} times; give it once");
    }

    private static BadHttpRequestException Bad(string message) => new(message, StatusCodes.Status400BadRequest);
}
