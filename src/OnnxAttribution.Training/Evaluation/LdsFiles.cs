using System.Text.Json;
using System.Text.Json.Serialization;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Training.Evaluation;

/// <summary>
/// The small JSON files an evaluation run keeps beside its stores and scores, so that a rerun reuses them: each is written
/// and read as one of these records (numbers not measured are "NaN"; a field an older run did not write reads as null).
/// </summary>
internal static class LdsFiles
{
    /// <summary>Reads a record written by <see cref="Runtime.JsonFile.Save{T}"/>; null when the file is not there.</summary>
    /// <exception cref="UserInputException">The file is not valid JSON of that record.</exception>
    public static T? TryRead<T>(string path) where T : class =>
        File.Exists(path) ? Read<T>(path, $"not a {typeof(T).Name} file of an evaluation run (delete it to redo that step)") : null;

    /// <summary>Reads a record written by <see cref="Runtime.JsonFile.Save{T}"/>.</summary>
    /// <param name="path">The file.</param>
    /// <param name="notIt">What the message says the file is not, after its path.</param>
    /// <exception cref="UserInputException">The file is not valid JSON of that record: the message names the file.</exception>
    public static T Read<T>(string path, string notIt) where T : class
    {
        try
        {
            return JsonSerializer.Deserialize<T>(File.ReadAllText(path), Runtime.Models.ModelMetadata.JsonOptions)
                ?? throw new JsonException("the file holds null");
        }
        catch (JsonException e)
        {
            throw new UserInputException($"{path}: {notIt}: {e.Message}", e);
        }
    }

    /// <summary>A value as compact JSON, for messages.</summary>
    public static string Compact<T>(T value) => JsonSerializer.Serialize(value, Compacted);

    private static readonly JsonSerializerOptions Compacted = new(Runtime.Models.ModelMetadata.JsonOptions) { WriteIndented = false };
}

/// <summary>A method's store in an LDS folder: how long building it took, at which setting point (build-seconds.json).</summary>
/// <param name="BuildSeconds">Seconds to build the store; null when an earlier run did not record it.</param>
/// <param name="Setting">The setting point it was built at; null when an earlier run did not record it.</param>
internal sealed record StoreBuildRecord(double? BuildSeconds, StoreBuildSetting? Setting);

/// <summary>The setting point a store was built at; the projector is written only when it is not the default (dense).</summary>
internal sealed record StoreBuildSetting(int Timesteps, int NoiseDraws, int Dim,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Projector = null);

/// <summary>One method's saved scores of a set of queries (NAME.json beside NAME.npy): what they were scored from, and how long it took.</summary>
/// <param name="Store">The store's full path.</param>
/// <param name="Damping">The damping the store held; null for a method without one.</param>
/// <param name="QueryTimesteps">The queries' timesteps (0: all of the store's).</param>
/// <param name="ScoreSeconds">Seconds scoring took; null when an earlier run did not record it.</param>
/// <param name="Steps">A stepwise method's timesteps (its per-step scores are NAME-steps.npy); null otherwise.</param>
internal sealed record ScoreRecord(string? Store, double? Damping, int QueryTimesteps, double? ScoreSeconds, long[]? Steps);

/// <summary>How long measuring one model took, beside a matrix of measurements (NAME.json beside NAME.npy).</summary>
internal sealed record MeasureRecord(double? SecondsPerModel);
