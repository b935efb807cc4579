using System.Text.Json;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;

namespace OnnxAttribution.Runtime;

/// <summary>The project's JSON files (model.json, run.json, method.json, reports): indented, written whole or not at all.</summary>
public static class JsonFile
{
    /// <summary>
    /// Writes <paramref name="value"/> as indented JSON (<see cref="ModelMetadata.JsonOptions"/>) to a temporary file beside
    /// <paramref name="path"/>, then renames it over <paramref name="path"/>: a killed process never leaves a half-written file.
    /// </summary>
    /// <exception cref="AttributionException">The file cannot be written (no partial file is left).</exception>
    public static void Save<T>(string path, T value)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(JsonSerializer.Serialize(value, ModelMetadata.JsonOptions) + "\n");
        AtomicFile.Write(path, s => s.Write(bytes), bytes.Length);
    }
}
