using System.Text.Json;
using System.Text.Json.Serialization;

namespace OnnxAttribution.Runtime.Models;

/// <summary>Reads and writes <see cref="ConditionKind"/> by its camelCase name.</summary>
public sealed class ConditionKindJsonConverter() : JsonStringEnumConverter<ConditionKind>(JsonNamingPolicy.CamelCase, allowIntegerValues: false);
