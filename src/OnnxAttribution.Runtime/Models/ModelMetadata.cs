using System.Text.Json.Serialization;
using System.Text.Json;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Runtime.Models;

/// <summary>
/// The contents of <c>model.json</c> in a model directory: the diffusion settings, the image geometry,
/// the file names of the graphs and the parameter list.
/// </summary>
public sealed record ModelMetadata
{
    /// <summary>The name of the metadata file in a model folder.</summary>
    public const string FileName = "model.json";

    /// <summary>The version of this file's layout; readers refuse versions they do not know.</summary>
    public const int CurrentFormatVersion = 1;

    /// <summary>The version of the file's layout; <see cref="Load"/> refuses any other than <see cref="CurrentFormatVersion"/>.</summary>
    public int FormatVersion { get; init; } = CurrentFormatVersion;

    /// <summary>The model's name, e.g. <c>ddpm-unet</c>.</summary>
    public required string Name { get; init; }

    /// <summary>H = W of the images the model takes (positive).</summary>
    public required int ImageSize { get; init; }

    /// <summary>C of the images the model takes (positive).</summary>
    public required int Channels { get; init; }

    /// <summary>The noise schedule the model was trained with.</summary>
    public required ScheduleSettings Schedule { get; init; }

    /// <summary>What the network predicts; only <c>epsilon</c> is supported.</summary>
    public string Prediction { get; init; } = "epsilon";

    /// <summary>The condition the model takes besides x_t and t (a class label); null for an unconditional model.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ConditionSpec? Condition { get; init; }

    /// <summary>Set for a LoRA fine-tune (<c>train --base</c>): its base model and adapter settings; absent otherwise.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public LoraSpec? Lora { get; init; }

    /// <summary>File name of the forward graph inside the model directory.</summary>
    public string Forward { get; init; } = "forward.onnx";

    /// <summary>File name of the gradient graph inside the model directory.</summary>
    public string Vjp { get; init; } = "vjp.onnx";

    /// <summary>The architecture's settings as written by the trainer (for the U-Net: its <c>UNetConfig</c>),
    /// so the TorchSharp module can be rebuilt from a model directory.</summary>
    public System.Text.Json.Nodes.JsonObject? Architecture { get; init; }

    /// <summary>The trainable parameters in the model's order; empty when not recorded.</summary>
    public IReadOnlyList<ParameterInfo> Parameters { get; init; } = [];

    /// <summary>How the model was trained, or null when not recorded.</summary>
    public TrainingInfo? Training { get; init; }

    /// <summary>Set for a model not trained here (<see cref="ModelImport"/>): where it came from and how it was wired.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ImportInfo? Import { get; init; }

    /// <summary>Set when the folder holds one training checkpoint's raw weights (<c>export --step</c>); absent otherwise.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public CheckpointInfo? Checkpoint { get; init; }

    /// <summary>The JSON settings of <c>model.json</c> and the other JSON files: camelCase names and enum values, indented, NaN as "NaN".</summary>
    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        // A run resumed at its last step has no new loss to report: NaN is written as "NaN", not refused.
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Reads <c>model.json</c> from a model directory (or the file itself).</summary>
    /// <exception cref="ModelFileException">The file is missing, not valid JSON, of an unknown format version, or holds
    /// impossible values (sizes, a schedule without timesteps or with a β outside (0, 1)).</exception>
    public static ModelMetadata Load(string directoryOrFile)
    {
        ArgumentNullException.ThrowIfNull(directoryOrFile);
        var path = Directory.Exists(directoryOrFile) ? Path.Combine(directoryOrFile, FileName) : directoryOrFile;
        if (!File.Exists(path))
        {
            throw new ModelFileException($"model metadata not found: {path} (a model directory holds model.json, forward.onnx and vjp.onnx)");
        }
        ModelMetadata? meta;
        try
        {
            meta = JsonSerializer.Deserialize<ModelMetadata>(File.ReadAllText(path), JsonOptions);
        }
        catch (JsonException e)
        {
            throw new ModelFileException($"{path}: not valid model metadata ({e.Message})", e);
        }
        if (meta is null)
        {
            throw new ModelFileException($"{path}: empty model metadata");
        }
        if (meta.FormatVersion != CurrentFormatVersion)
        {
            throw new ModelFileException($"{path}: field 'formatVersion' is {meta.FormatVersion}; this build reads version {CurrentFormatVersion}");
        }
        if (meta.ImageSize <= 0 || meta.Channels <= 0)
        {
            throw new ModelFileException($"{path}: fields 'imageSize' and 'channels' must be positive (found {meta.ImageSize}, {meta.Channels})");
        }
        if (meta.Schedule is null)
        {
            throw new ModelFileException($"{path}: field 'schedule' is missing");
        }
        if (meta.Schedule.CheckError() is { } error)
        {
            throw new ModelFileException($"{path}: {error}");
        }
        if (meta.Condition?.CheckError() is { } conditionError)
        {
            throw new ModelFileException($"{path}: {conditionError}");
        }
        return meta;
    }

    /// <summary>Writes <c>model.json</c> into <paramref name="directory"/>.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, FileName);
        JsonFile.Save(path, this);
    }
}
