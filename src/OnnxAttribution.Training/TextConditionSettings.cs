using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Models;

namespace OnnxAttribution.Training;

/// <summary>
/// A text-conditioned U-Net's prompt settings (<see cref="UNetConfig.Text"/>): the class names its training captions are
/// made from ("a dark sneaker", <see cref="Captions"/>), which fix the vocabulary and the prompt length, and the width D of
/// the caption encoder's output.
/// </summary>
public sealed record TextConditionSettings
{
    /// <summary>The caption encoder's file in an exported model folder.</summary>
    public const string EncoderFile = "text-encoder.onnx";

    /// <summary>The class names (index = label) the captions name.</summary>
    public IReadOnlyList<string> ClassNames { get; init; } = [];

    /// <summary>D, the width of the encoder's output (the cross-attention's keys and values read it).</summary>
    public int Width { get; init; } = 32;

    /// <summary>The words, the padding first (<see cref="Captions.Vocabulary"/>).</summary>
    public IReadOnlyList<string> Vocabulary() => Captions.Vocabulary(ClassNames);

    /// <summary>L, the tokens of a prompt.</summary>
    public int Length() => Captions.Length(ClassNames);

    /// <summary>Why the settings are impossible, or null.</summary>
    public string? CheckError() =>
        ClassNames.Count == 0 ? "text: field 'classNames' is empty; captions name the classes"
        : Width < 1 ? $"text: field 'width' is {Width}; it must be positive"
        : Spec([]).CheckError() is { } error ? $"text: {error}"
        : null;

    /// <summary>model.json's condition for a network with these settings.</summary>
    public ConditionSpec Spec(IReadOnlyList<string> classNames) => new()
    {
        Kind = ConditionKind.Text,
        Input = ConditionSpec.DefaultPromptInput,
        NullLabel = 0,
        ClassNames = classNames.Count > 0 ? classNames.ToArray() : ClassNames.ToArray(),
        Encoder = EncoderFile,
        EncoderInput = OnnxExporter.InputTokens,
        EncoderOutput = OnnxExporter.OutputContext,
        EmbeddingInput = OnnxExporter.InputContext,
        Length = Length(),
        Width = Width,
        Vocabulary = Vocabulary().ToArray(),
    };
}
