namespace OnnxAttribution.Runtime.Models;

/// <summary>
/// The <c>lora</c> field of a LoRA fine-tune's <c>model.json</c>: which base model it adapts and its adapters' settings. The
/// forward graph holds the frozen base weights and the adapters; the model's parameters (<see cref="ModelMetadata.Parameters"/>)
/// and so its gradient graph are the adapters' alone — the gradients the papers' LoRA setting attributes with.
/// </summary>
public sealed record LoraSpec
{
    /// <summary>The base model folder as the fine-tune was given it (<c>train --base</c>).</summary>
    public required string Base { get; init; }

    /// <summary>SHA-256 of the base's <c>forward.onnx</c> (lower-case hex): the base the adapters were trained on.</summary>
    public required string BaseSha256 { get; init; }

    /// <summary>The adapters' rank.</summary>
    public int Rank { get; init; }

    /// <summary>The adapters' scale numerator (their output is multiplied by alpha / rank).</summary>
    public double Alpha { get; init; }

    /// <summary>Which layers have adapters.</summary>
    public LoraTargets Targets { get; init; }

    /// <summary>The adapters' settings (rank, alpha, targets), e.g. to fine-tune the same base again.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public LoraSettings Settings => new() { Rank = Rank, Alpha = Alpha, Targets = Targets };
}
