using System.Globalization;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Models;

namespace OnnxAttribution.Server;

/// <summary>
/// The condition of each query of a request to a store whose model is class-conditional: JSON fields <c>label</c> (one
/// for every query) or <c>labels</c> (one per query) and <c>guidance</c> (seeds only), or the query parameter <c>label</c>
/// of a PNG body. A conditional store needs one; an unconditional one refuses them. Problems are 400s naming the field.
/// </summary>
internal static class QueryConditions
{
    /// <summary><paramref name="input"/> with each query's label set (given images) or the labels to sample with (seeds).</summary>
    /// <exception cref="BadHttpRequestException">A label is missing, out of range, of the wrong count, or given to an unconditional store.</exception>
    public static QueryInput Apply(QueryInput input, ServedStore store, long? label, long[]? labels, double? guidance, string labelField = "label")
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(store);
        var condition = store.Info.Condition;
        if (condition is null)
        {
            if (label is not null || labels is not null || guidance is not null)
            {
                string field = label is not null ? labelField : labels is not null ? "labels" : "guidance";
                throw Bad($"field '{field}': the model of store '{store.Name}' is unconditional; leave it out");
            }
            return input;
        }
        if (guidance is not null && input is not QueryInput.Seeds)
        {
            throw Bad("field 'guidance' goes with 'seeds' only (a given image is attributed under its label, whatever it was sampled with)");
        }
        var perQuery = LabelsOf(input.Count, condition, store, label, labels, labelField);
        return input switch
        {
            QueryInput.Given given => new QueryInput.Given(given.Queries.Select((q, i) => q with { Condition = perQuery[i] }).ToList()),
            QueryInput.Seeds seeds => seeds with { Condition = new QueryCondition(perQuery, Guidance(guidance, condition)) },
            _ => input,
        };
    }

    private static long[] LabelsOf(int count, ConditionSpec condition, ServedStore store, long? label, long[]? labels, string labelField)
    {
        string range = $"0 … {condition.Classes - 1}";
        if ((label is null) == (labels is null))
        {
            throw Bad(label is null
                ? $"field '{labelField}' is required: the model of store '{store.Name}' is conditioned on a class label ({range}); " +
                  "give 'label' for every query or 'labels', one per query"
                : "give 'label' or 'labels', not both");
        }
        if (labels is not null && labels.Length != count)
        {
            throw Bad($"field 'labels' has {labels.Length} entries for {count} queries; give one per query (or 'label' for all)");
        }
        var result = labels ?? Enumerable.Repeat(label!.Value, count).ToArray();
        for (int i = 0; i < result.Length; i++)
        {
            if (result[i] < 0 || result[i] >= condition.Classes)
            {
                string field = labels is null ? labelField : $"labels[{i}]";
                throw Bad($"field '{field}' is {result[i].ToString(CultureInfo.InvariantCulture)}; store '{store.Name}' takes class labels {range}");
            }
        }
        return result;
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
            throw Bad("field 'guidance': the model has no null label, so classifier-free guidance cannot run; leave it out");
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

    private static BadHttpRequestException Bad(string message) => new(message, StatusCodes.Status400BadRequest);
}
