using System.Text.Json;
using OnnxAttribution.Primitives;
using OnnxAttribution.Store;

namespace OnnxAttribution.Runtime.Gradients;

/// <summary>
/// Checks a model folder's gradient graph against gradients computed elsewhere — PyTorch autograd on the model the ONNX
/// file was exported from (<c>tools/torch-models/export.py</c> writes them). The reference is a folder with
/// <c>oracle.json</c> (the step <c>t</c>, and <c>pairs</c>: which initializer holds which parameter), <c>x_t.npy</c> and
/// <c>eps.npy</c> (one example, flattened to a 1 × C·H·W matrix) and <c>grad.&lt;initializer&gt;.npy</c> (1 × elements, in the
/// initializer's layout): the gradient of D-TRAK's output f = ‖ε̂(x_t, t)‖², which the graph computes with the
/// cotangent 2·ε̂ — for the reference example run in a batch of two beside another image at another step.
/// </summary>
public static class ReferenceGradientCheck
{
    private sealed record Pair(string Initializer, string Parameter);

    private sealed record Oracle(long T, List<Pair> Pairs, List<string>? UnmatchedParameters, long? Label = null, string? Prompt = null);

    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, PropertyNameCaseInsensitive = true };

    /// <summary>Runs the check.</summary>
    /// <param name="model">The model folder (its vjp.onnx).</param>
    /// <param name="reference">The reference folder.</param>
    /// <exception cref="UserInputException">The reference folder is missing a file or does not fit the model.</exception>
    public static ReferenceGradientReport Run(ModelDirectory model, string reference)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(reference);
        string jsonPath = Path.Combine(reference, "oracle.json");
        if (!File.Exists(jsonPath))
        {
            throw new UserInputException($"{reference}: no oracle.json (write the reference with tools/torch-models/export.py)");
        }
        Oracle oracle;
        try
        {
            oracle = JsonSerializer.Deserialize<Oracle>(File.ReadAllText(jsonPath), JsonOptions)
                ?? throw new UserInputException($"{jsonPath}: empty");
        }
        catch (JsonException e)
        {
            throw new UserInputException($"{jsonPath}: not a reference description: {e.Message}", e);
        }
        if (oracle.Pairs is null)
        {
            throw new UserInputException($"{jsonPath}: no 'pairs' (which initializer holds which parameter)");
        }
        var x = Read(reference, "x_t");
        var epsRef = Read(reference, "eps");
        int per = model.Metadata.Channels * model.Metadata.ImageSize * model.Metadata.ImageSize;
        if (x.Length != per || epsRef.Length != per)
        {
            throw new UserInputException($"{reference}: x_t.npy holds {x.Length} values; the model takes {model.Metadata.Channels}×{model.Metadata.ImageSize}×{model.Metadata.ImageSize} = {per}");
        }
        // The reference example runs in a batch of two beside another image at another step: its per-example gradient
        // must not depend on what shares its batch (the batch axis stays symbolic through the exporter's shape arithmetic).
        // A conditional model's reference example carries its condition (oracle.json "label", or a text model's "prompt"); both
        // images of the pair run under it.
        var condition = model.Metadata.Condition;
        bool text = condition?.Kind == Models.ConditionKind.Text;
        object? given = condition is null ? oracle.Label ?? (object?)oracle.Prompt : text ? oracle.Prompt : oracle.Label;
        if ((condition is null) != (given is null))
        {
            throw new UserInputException(condition is null
                ? $"{jsonPath}: the reference example has a condition ({oracle.Label?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? oracle.Prompt}), but {model.Path} is unconditional"
                : $"{jsonPath}: no '{(text ? "prompt" : "label")}', but {model.Path} takes one (input '{condition.Input}'): write the reference of a conditional model");
        }
        long[] labels = condition is null ? []
            : text ? [condition.EncodePrompt(oracle.Prompt!, $"{jsonPath}: 'prompt'"), condition.EncodePrompt(oracle.Prompt!, "prompt")]
            : [condition.RequireLabel(oracle.Label!.Value, $"{jsonPath}: 'label'"), oracle.Label!.Value];
        using var vjp = VjpSession.Open(model.RequireVjp(), null, condition);
        var pair = new float[2 * per];
        x.CopyTo(pair, 0);
        var other = new Random(7);
        for (int i = per; i < pair.Length; i++)
        {
            pair[i] = (float)(other.NextDouble() * 2 - 1);
        }
        long[] steps = [oracle.T, (oracle.T + model.Metadata.Schedule.Timesteps / 2) % model.Metadata.Schedule.Timesteps];
        var first = vjp.Run(pair, steps, new float[2 * per], 2, [VjpSession.OutputEps], labels);
        var cotangent = Array.ConvertAll(first[VjpSession.OutputEps], v => 2 * v);
        var outputs = vjp.Run(pair, steps, cotangent, 2, null, labels);
        var eps = outputs[VjpSession.OutputEps][..per];

        var compared = new List<(Pair Pair, long Elements, double MaxDiff, double MaxRef)>();
        var missing = new List<string>();
        foreach (var tensor in oracle.Pairs)
        {
            if (!outputs.TryGetValue("grad." + tensor.Initializer, out var ours))
            {
                missing.Add($"{tensor.Initializer} ({tensor.Parameter})");
                continue;
            }
            var theirs = Read(reference, "grad." + tensor.Initializer);
            if (2 * theirs.Length != ours.Length)
            {
                throw new UserInputException($"{reference}: grad.{tensor.Initializer}.npy holds {theirs.Length} values; the graph's gradient has {ours.Length / 2}");
            }
            var (maxDiff, maxRef) = Compare(ours[..theirs.Length], theirs);
            compared.Add((tensor, theirs.Length, maxDiff, maxRef));
        }
        double floor = ReferenceGradientReport.VanishingFraction * compared.Select(c => c.MaxRef).DefaultIfEmpty(0).Max();
        var tensors = compared.Select(c =>
        {
            double scale = Math.Max(c.MaxRef, floor);
            return new ReferenceTensorError(c.Pair.Initializer, c.Pair.Parameter, c.Elements, scale > 0 ? c.MaxDiff / scale : c.MaxDiff, c.MaxDiff,
                c.MaxRef, c.MaxRef < floor);
        }).ToList();
        var matched = oracle.Pairs.Select(p => "grad." + p.Initializer).ToHashSet(StringComparer.Ordinal);
        var unmatched = vjp.GradientOutputs.Where(g => !matched.Contains(g)).Select(g => g["grad.".Length..]).ToList();
        var (epsDiff, epsMax) = Compare(eps, epsRef);
        return new ReferenceGradientReport(model.Path, oracle.T, epsMax > 0 ? epsDiff / epsMax : epsDiff,
            tensors.OrderByDescending(t => double.IsNaN(t.MaxRelativeError) ? double.PositiveInfinity : t.MaxRelativeError).ToList(), missing, unmatched,
            oracle.UnmatchedParameters ?? []);
    }

    private static float[] Read(string folder, string name)
    {
        string path = Path.Combine(folder, name + ".npy");
        if (!File.Exists(path))
        {
            throw new UserInputException($"{folder}: {name}.npy is missing");
        }
        try
        {
            return NpyFormat.ReadMatrix(path).Values;
        }
        catch (StoreFormatException e)
        {
            throw new UserInputException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>max |ours − reference| and max |reference|.</summary>
    private static (double MaxDiff, double MaxRef) Compare(float[] ours, float[] reference)
    {
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < ours.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs((double)ours[i] - reference[i]));
            maxRef = Math.Max(maxRef, Math.Abs((double)reference[i]));
        }
        return (maxDiff, maxRef);
    }
}
