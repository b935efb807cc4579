using OnnxAttribution.Primitives;

namespace OnnxAttribution.Runtime.Models;

/// <summary>
/// The low-rank adapters of a LoRA fine-tune (Hu et al. 2021): every targeted layer with weight W gets two trainable
/// matrices, A (rank × fan-in, the layer's kernel shape) and B (fan-out × rank, zero at start), and computes
/// W x + (alpha / rank) · B (A x); the base weights stay frozen.
/// </summary>
public sealed record LoraSettings
{
    /// <summary>The adapters' rank r (positive).</summary>
    public int Rank { get; init; } = 4;

    /// <summary>The scale numerator: the adapters' output is multiplied by alpha / rank (positive).</summary>
    public double Alpha { get; init; } = 4;

    /// <summary>Which layers get adapters.</summary>
    public LoraTargets Targets { get; init; } = LoraTargets.Conv;

    /// <summary>alpha / rank: the factor the adapters' output is multiplied by.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public double Scale => Alpha / Rank;

    /// <summary>The first thing wrong with these settings, or null when they are valid.</summary>
    public string? CheckError() =>
        Rank < 1 ? $"LoRA rank is {Rank}; expected a positive integer"
        : !(Alpha > 0) || double.IsInfinity(Alpha) ? $"LoRA alpha is {Alpha}; expected a positive number"
        : !Enum.IsDefined(Targets) ? $"LoRA targets is {Targets}; expected conv, linear or all"
        : null;

    /// <summary>Parses the command line's name of the targets: conv, linear or all.</summary>
    /// <exception cref="UserInputException">Another name (attention names the layers this U-Net does not have).</exception>
    public static LoraTargets ParseTargets(string text, string option)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text.Trim().ToLowerInvariant() switch
        {
            "conv" => LoraTargets.Conv,
            "linear" => LoraTargets.Linear,
            "all" => LoraTargets.All,
            "attention" => throw new UserInputException($"{option} is 'attention', but this U-Net has no attention layers; " +
                "expected conv (the residual blocks' 3×3 convolutions), linear (the time-embedding layers) or all"),
            _ => throw new UserInputException($"{option} is '{text}'; expected conv, linear or all"),
        };
    }
}
