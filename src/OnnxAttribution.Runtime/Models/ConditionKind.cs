using System.Text.Json.Serialization;

namespace OnnxAttribution.Runtime.Models;

/// <summary>What a conditional model's condition input is. Written in JSON by name, in camelCase (<c>"label"</c>), whatever the serializer's options.</summary>
[JsonConverter(typeof(ConditionKindJsonConverter))]
public enum ConditionKind
{
    /// <summary>A class label: input int64 [B], one label in [0, classes) per image (plus the null label, when the model has one).</summary>
    Label,

    /// <summary>
    /// A prompt: the forward graph takes its caption encoder's output, float [B, L, D], and the engine binds one int64 per
    /// image, the prompt's words packed as base-V digits (<see cref="ConditionSpec.EncodePrompt"/>); the encoder runs inside
    /// every session (<see cref="ConditionSpec.Encoder"/>).
    /// </summary>
    Text,
}
