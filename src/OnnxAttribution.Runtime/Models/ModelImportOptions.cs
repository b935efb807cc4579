namespace OnnxAttribution.Runtime.Models;

/// <summary>
/// What <see cref="ModelImport.Import"/> needs to know about a diffusion model not trained here: an ε-prediction ONNX
/// model with an image input, a timestep input and an output, and what its graph cannot say — the noise schedule it was
/// trained with and how it reads its timestep.
/// </summary>
public sealed record ModelImportOptions
{
    /// <summary>The ONNX file: opset 7 to 26, one image input [batch, C, H, W], one timestep input [batch].</summary>
    public required string ModelPath { get; init; }

    /// <summary>The model folder to write (forward.onnx, vjp.onnx, model.json); must not hold a model already.</summary>
    public required string OutDirectory { get; init; }

    /// <summary>The noise schedule the model was trained with (kind, T, β range).</summary>
    public required ScheduleSettings Schedule { get; init; }

    /// <summary>The image input's name; null to take the one float input of rank 4.</summary>
    public string? ImageInput { get; init; }

    /// <summary>The timestep input's name; null to take the one input that is not the image.</summary>
    public string? TimestepInput { get; init; }

    /// <summary>The output holding ε̂; null when the model has one output.</summary>
    public string? Output { get; init; }

    /// <summary>Image side; null to read it from the image input's shape (it must then be fixed there).</summary>
    public int? ImageSize { get; init; }

    /// <summary>Image channels; null to read them from the image input's shape.</summary>
    public int? Channels { get; init; }

    /// <summary>
    /// The model reads the timestep as <c>TimestepScale · (t + TimestepOffset)</c>, where t is the engine's 0-based step
    /// 0 … T−1 (the convention of PyTorch's DDPM code and of diffusers' schedulers: scale 1, offset 0). A model that
    /// takes t / T in [0, 1) has scale 1/T; one that counts steps from 1 has offset 1. Integer timestep inputs take
    /// integer offsets and scale 1 only.
    /// </summary>
    public double TimestepScale { get; init; } = 1;

    /// <inheritdoc cref="TimestepScale"/>
    public double TimestepOffset { get; init; }

    /// <summary>
    /// Which initializers are the parameters to attribute through, as name patterns (<c>*</c> any run of characters,
    /// <c>?</c> one): null for the default choice from the graph (<see cref="Onnx.Differentiation.VjpBuilder.DefaultParameters"/>).
    /// </summary>
    public IReadOnlyList<string>? Parameters { get; init; }

    /// <summary>Name patterns of initializers to leave out of the parameters (a frozen buffer such as a fixed position embedding).</summary>
    public IReadOnlyList<string>? ExcludeParameters { get; init; }

    /// <summary>The model's name in model.json; null for the ONNX file's name.</summary>
    public string? Name { get; init; }

    /// <summary>For a class-conditional model: its class-label input (int64 [batch], e.g. diffusers' <c>class_labels</c>); for a
    /// text-conditioned one (with <see cref="TextEncoderPath"/>) its embedding input (float [batch, L, D], diffusers'
    /// <c>encoder_hidden_states</c>); null for an unconditional model.</summary>
    public string? ConditionInput { get; init; }

    /// <summary>For a text-conditioned model: its caption encoder, an ONNX graph from token ids int64 [batch, L] to float
    /// [batch, L, D] at the model's opset; copied into the folder as <c>text-encoder.onnx</c>.</summary>
    public string? TextEncoderPath { get; init; }

    /// <summary>With <see cref="TextEncoderPath"/>: the words of token ids 1, 2, … (0 is the padding).</summary>
    public IReadOnlyList<string>? Vocabulary { get; init; }

    /// <summary>With <see cref="TextEncoderPath"/>: the class names (index = label) that make the training rows' captions
    /// ("a dark sneaker", OnnxAttribution.Core's <c>Captions</c>); without them the folder generates and attributes under prompts but
    /// cannot be featurized.</summary>
    public IReadOnlyList<string>? ClassNames { get; init; }

    /// <summary>With <see cref="ConditionInput"/>: the number of classes (labels 0 … classes − 1).</summary>
    public int? Classes { get; init; }

    /// <summary>With <see cref="ConditionInput"/>: the label the model was trained to read as "no class" (classifier-free
    /// guidance), or null when it has none.</summary>
    public long? NullLabel { get; init; }
}
