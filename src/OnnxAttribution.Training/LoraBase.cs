using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Store;
using static TorchSharp.torch;

namespace OnnxAttribution.Training;

/// <summary>The base model of a LoRA fine-tune: its architecture, its weights, its fingerprint, and the checks that a run
/// and a base belong together.</summary>
public static class LoraBase
{
    /// <summary>The network a LoRA fine-tune of <paramref name="baseDirectory"/> trains: the base's architecture with
    /// <paramref name="settings"/>' adapters.</summary>
    /// <exception cref="UserInputException">The folder is not a model trained here (no U-Net architecture), or is itself a
    /// LoRA fine-tune, or the settings are invalid.</exception>
    public static UNetConfig ConfigOf(string baseDirectory, LoraSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.CheckError() is { } error)
        {
            throw new UserInputException(error);
        }
        var config = BaseConfig(baseDirectory).Config with { Lora = settings };
        config.Validate();
        return config;
    }

    /// <summary>The base's parameters by name, checked to fit <paramref name="config"/> without its adapters.</summary>
    /// <exception cref="UserInputException">The base's architecture differs from <paramref name="config"/>'s.</exception>
    /// <exception cref="ModelFileException">The base's files are missing or damaged.</exception>
    public static Dictionary<string, float[]> Weights(string baseDirectory, UNetConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var (baseConfig, meta) = BaseConfig(baseDirectory);
        if (!System.Text.Json.Nodes.JsonNode.DeepEquals(baseConfig.ToJson(), (config with { Lora = null }).ToJson()))
        {
            throw new UserInputException($"base model {baseDirectory}: its architecture {baseConfig.ToJson().ToJsonString()} is not the one the " +
                $"adapters were made for ({(config with { Lora = null }).ToJson().ToJsonString()})");
        }
        using var net = new UNet(baseConfig);
        return net.ReadWeights(baseDirectory, meta);
    }

    /// <summary>SHA-256 of the base's forward graph (lower-case hex): what <see cref="LoraSpec.BaseSha256"/> records.</summary>
    /// <exception cref="ModelFileException">The base has no forward graph.</exception>
    public static string Sha256(string baseDirectory)
    {
        var meta = ModelMetadata.Load(baseDirectory);
        var forward = Path.Combine(baseDirectory, meta.Forward);
        return File.Exists(forward) ? StoreMeta.FingerprintFile(forward)
            : throw new ModelFileException($"{forward} not found (base model {baseDirectory}, model.json field 'forward')");
    }

    /// <summary>
    /// Checks that a resumed LoRA run's frozen weights are <paramref name="baseWeights"/>: a run fine-tunes one base, and
    /// resuming it on another would mix them.
    /// </summary>
    /// <exception cref="UserInputException">A frozen parameter differs from the base's (the message names it and the folders).</exception>
    public static void RequireSameBase(UNet model, IReadOnlyDictionary<string, float[]> baseWeights, string baseDirectory, string runDirectory)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(baseWeights);
        foreach (var (name, p) in model.named_parameters())
        {
            if (!baseWeights.TryGetValue(name, out var expected))
            {
                continue;
            }
            using var scope = NewDisposeScope();
            var actual = p.detach().contiguous().data<float>().ToArray();
            if (!actual.AsSpan().SequenceEqual(expected))
            {
                throw new UserInputException($"--base {baseDirectory}: the run in {runDirectory} fine-tunes another base (its frozen parameter " +
                    $"'{name}' differs); give the base it was started from, or another --out for a new run");
            }
        }
    }

    /// <summary>model.json's record of a fine-tune of <paramref name="baseDirectory"/> (as given) with <paramref name="settings"/>.</summary>
    public static LoraSpec Spec(string baseDirectory, string baseSha256, LoraSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return new LoraSpec { Base = baseDirectory, BaseSha256 = baseSha256, Rank = settings.Rank, Alpha = settings.Alpha, Targets = settings.Targets };
    }

    private static (UNetConfig Config, ModelMetadata Meta) BaseConfig(string baseDirectory)
    {
        ArgumentNullException.ThrowIfNull(baseDirectory);
        if (!Directory.Exists(baseDirectory))
        {
            throw new UserInputException($"--base: model folder {baseDirectory} not found");
        }
        var meta = ModelMetadata.Load(baseDirectory);
        if (meta.Lora is not null)
        {
            throw new UserInputException($"--base {baseDirectory} is itself a LoRA fine-tune (of {meta.Lora.Base}); fine-tune its base instead");
        }
        if (meta.Architecture is null)
        {
            throw new UserInputException($"--base {baseDirectory}: model.json has no 'architecture'; a base must be a U-Net trained here ('train' then 'export')");
        }
        return (UNetConfig.FromJson(meta.Architecture, Path.Combine(baseDirectory, ModelMetadata.FileName)), meta);
    }
}
