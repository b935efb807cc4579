namespace OnnxAttribution.Core.Models;

/// <summary>What a conditional model's condition input is.</summary>
public enum ConditionKind
{
    /// <summary>A class label: input int64 [B], one label in [0, classes) per image (plus the null label, when the model has one).</summary>
    Label,
}
