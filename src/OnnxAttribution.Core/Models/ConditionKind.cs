using System.Text.Json.Serialization;

namespace OnnxAttribution.Core.Models;

/// <summary>What a conditional model's condition input is. Written in JSON by name, in camelCase (<c>"label"</c>), whatever the serializer's options.</summary>
[JsonConverter(typeof(ConditionKindJsonConverter))]
public enum ConditionKind
{
    /// <summary>A class label: input int64 [B], one label in [0, classes) per image (plus the null label, when the model has one).</summary>
    Label,
}
