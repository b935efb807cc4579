using System.Text.Json;
using System.Text.Json.Nodes;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;

namespace OnnxAttribution.Training;

/// <summary>
/// The settings of the DDPM U-Net (ε-prediction). Written into <c>model.json</c> as <c>architecture</c>, so the module
/// can be rebuilt from a model directory.
/// </summary>
/// <remarks>
/// Level i works at resolution <see cref="ImageSize"/>/2^i with <see cref="BaseChannels"/>·<see cref="ChannelMultipliers"/>[i]
/// channels: one ResBlock per level on the way down, a stride-2 convolution between levels, one middle ResBlock, and on
/// the way up nearest ×2 + 3×3 convolution, concatenation with the level's skip, one ResBlock.
/// With the defaults at 16×16 and one channel the network has about 0.28 M parameters.
/// </remarks>
public sealed record UNetConfig
{
    /// <summary>The architecture's identifier in <c>model.json</c>.</summary>
    public const string ArchitectureName = "ddpm-unet";

    /// <summary>Always <see cref="ArchitectureName"/>; readers refuse other values.</summary>
    public string Architecture { get; init; } = ArchitectureName;

    /// <summary>Height and width of the (square) images.</summary>
    public int ImageSize { get; init; } = 16;

    /// <summary>Image channels: 1 (grayscale) or 3 (RGB).</summary>
    public int Channels { get; init; } = 1;

    /// <summary>Channels at the first level.</summary>
    public int BaseChannels { get; init; } = 32;

    /// <summary>Channels of each level as multiples of <see cref="BaseChannels"/>; its length is the number of levels.</summary>
    public IReadOnlyList<int> ChannelMultipliers { get; init; } = [1, 2];

    /// <summary>GroupNorm groups; every channel count must be divisible by it.</summary>
    public int Groups { get; init; } = 8;

    /// <summary>Length of the sinusoidal embedding of t (even): half sines, half cosines.</summary>
    public int SinusoidDim { get; init; } = 32;

    /// <summary>Width of the time embedding after its two linear layers.</summary>
    public int TimeEmbeddingDim { get; init; } = 128;

    /// <summary>The ε added to the variance inside every GroupNorm.</summary>
    public double GroupNormEpsilon { get; init; } = 1e-5;

    /// <summary>
    /// For a class-conditional network the number of classes (0, the default, for an unconditional one): an embedding table
    /// <c>label.weight</c> of Classes + 1 rows (the last is the null label, for classifier-free guidance) whose row y is added
    /// to the time embedding before its SiLU. Left out of model.json when 0, so unconditional models are written as before.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    public int Classes { get; init; }

    /// <summary>
    /// For a LoRA fine-tune the adapters' settings: which layers get low-rank adapters (named <c>{layer}_lora.a</c> and
    /// <c>…_lora.b</c>) beside the frozen base weights. Null (the default, left out of model.json) for a network without.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public LoraSettings? Lora { get; init; }

    /// <summary>
    /// For a text-conditioned network its prompt settings (null, the default, left out of model.json, otherwise): a caption
    /// encoder <c>text.*</c> (token and position embeddings, then a residual two-layer MLP) whose output the middle block's
    /// cross-attention <c>mid_attn.*</c> reads. The network takes the packed prompt (<see cref="ConditionSpec.EncodePrompt"/>)
    /// as its condition; the empty prompt, 0, is the null condition.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public TextConditionSettings? Text { get; init; }

    /// <summary>The condition value that stands for "no condition": <see cref="Classes"/> (the table's last row), or for a
    /// text-conditioned network 0 (the empty prompt).</summary>
    public int NullLabel => Text is null ? Classes : 0;

    /// <summary>Whether the network takes a condition (a class label or a prompt).</summary>
    public bool Conditional => Classes > 0 || Text is not null;

    /// <summary>Channels at level <paramref name="level"/>.</summary>
    public int LevelChannels(int level) => BaseChannels * ChannelMultipliers[level];

    /// <summary>Checks that the settings describe a buildable network.</summary>
    /// <exception cref="UserInputException">A setting is out of range or the sizes do not fit together.</exception>
    public void Validate()
    {
        if (Architecture != ArchitectureName)
        {
            throw new UserInputException($"U-Net config: field 'architecture' is '{Architecture}'; expected '{ArchitectureName}'");
        }
        if (ImageSize < 1 || Channels < 1 || BaseChannels < 1 || Groups < 1 || TimeEmbeddingDim < 1)
        {
            throw new UserInputException("U-Net config: imageSize, channels, baseChannels, groups and timeEmbeddingDim must be positive");
        }
        if (SinusoidDim < 2 || SinusoidDim % 2 != 0)
        {
            throw new UserInputException($"U-Net config: sinusoidDim must be even and at least 2 (found {SinusoidDim})");
        }
        if (ChannelMultipliers is null || ChannelMultipliers.Count < 1 || ChannelMultipliers.Any(m => m < 1))
        {
            throw new UserInputException("U-Net config: channelMultipliers needs at least one positive entry");
        }
        int levels = ChannelMultipliers.Count;
        if (ImageSize % (1 << (levels - 1)) != 0)
        {
            throw new UserInputException($"U-Net config: imageSize {ImageSize} must be divisible by 2^{levels - 1} for {levels} levels");
        }
        for (int i = 0; i < levels; i++)
        {
            if (LevelChannels(i) % Groups != 0)
            {
                throw new UserInputException($"U-Net config: level {i} has {LevelChannels(i)} channels, not divisible by groups = {Groups}");
            }
        }
        if (Classes < 0)
        {
            throw new UserInputException($"U-Net config: classes must be 0 (unconditional) or positive (found {Classes})");
        }
        if (Text is not null && Classes != 0)
        {
            throw new UserInputException("U-Net config: a network is conditioned on a class label (classes) or on a prompt (text), not both");
        }
        if (Text?.CheckError() is { } textError)
        {
            throw new UserInputException($"U-Net config: {textError}");
        }
        if (Lora?.CheckError() is { } loraError)
        {
            throw new UserInputException($"U-Net config: {loraError}");
        }
        if (!(GroupNormEpsilon > 0))
        {
            throw new UserInputException($"U-Net config: groupNormEpsilon must be positive (found {GroupNormEpsilon})");
        }
    }

    /// <summary>This config as the <c>architecture</c> object of <c>model.json</c>.</summary>
    public JsonObject ToJson() => JsonSerializer.SerializeToNode(this, ModelMetadata.JsonOptions)!.AsObject();

    /// <summary>Reads a config from the <c>architecture</c> object of <c>model.json</c>.</summary>
    /// <exception cref="ModelFileException">The object is missing, not a U-Net config, or invalid.</exception>
    public static UNetConfig FromJson(JsonObject? architecture, string source)
    {
        if (architecture is null)
        {
            throw new ModelFileException($"{source}: field 'architecture' is missing; it should hold the U-Net config");
        }
        UNetConfig? config;
        try
        {
            config = architecture.Deserialize<UNetConfig>(ModelMetadata.JsonOptions);
        }
        catch (JsonException e)
        {
            throw new ModelFileException($"{source}: field 'architecture' is not a U-Net config ({e.Message})", e);
        }
        if (config is null)
        {
            throw new ModelFileException($"{source}: field 'architecture' is null");
        }
        try
        {
            config.Validate();
        }
        catch (UserInputException e)
        {
            throw new ModelFileException($"{source}: {e.Message}", e);
        }
        return config;
    }

    /// <summary>The frequencies of the sinusoidal time embedding, f_i = 10000^(−i/half), i = 0..half−1, as float32
    /// (computed in float64 and rounded once, so TorchSharp and the ONNX graph use the same values).</summary>
    public float[] TimeFrequencies()
    {
        int half = SinusoidDim / 2;
        var f = new float[half];
        for (int i = 0; i < half; i++)
        {
            f[i] = (float)Math.Exp(-Math.Log(10000.0) * i / half);
        }
        return f;
    }
}
