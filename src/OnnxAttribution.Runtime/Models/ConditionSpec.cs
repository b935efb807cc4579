using System.Globalization;
using System.Text.Json.Serialization;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Runtime.Models;

/// <summary>
/// The condition a model takes besides x_t and t (<c>model.json</c> field <c>condition</c>; absent for an unconditional
/// model). Every image the engine handles — a training row, a generated or given query — carries one condition value, an
/// int64, bound to the graphs' input <see cref="Input"/> for every (t, ε) pair of that image: for a
/// <see cref="ConditionKind.Label"/> model its class label; for a <see cref="ConditionKind.Text"/> model its prompt's words
/// packed as base-V digits (<see cref="EncodePrompt"/>), which the sessions unpack and run through the model folder's caption
/// encoder in front of the forward or gradient graph's embedding input (<see cref="EmbeddingInput"/>).
/// </summary>
public sealed record ConditionSpec
{
    /// <summary>The default name of a label input.</summary>
    public const string DefaultLabelInput = "y";

    /// <summary>The kind of condition.</summary>
    public ConditionKind Kind { get; init; } = ConditionKind.Label;

    /// <summary>The name of the condition input of <c>forward.onnx</c> and <c>vjp.onnx</c>.</summary>
    public string Input { get; init; } = DefaultLabelInput;

    /// <summary>The number of classes: labels are 0 … classes − 1.</summary>
    public int Classes { get; init; }

    /// <summary>
    /// The label that stands for "no condition", which classifier-free guidance predicts with (a model trained here with
    /// condition dropout uses <see cref="Classes"/>); null when the model was not trained with one (guidance is then refused).
    /// </summary>
    public long? NullLabel { get; init; }

    /// <summary>The classes' names (index = label), or empty.</summary>
    public IReadOnlyList<string> ClassNames { get; init; } = [];

    /// <summary>The default name of a text model's packed-prompt input (the sessions' input, in front of the encoder).</summary>
    public const string DefaultPromptInput = "prompt";

    /// <summary>Text: the caption encoder's file in the model folder (tokens int64 [B, L] → float [B, L, D]).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Encoder { get; init; }

    /// <summary>Text: the name of the encoder's input (token ids, int64 [B, L]; 0 is the padding).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? EncoderInput { get; init; }

    /// <summary>Text: the name of the encoder's output, float [B, L, D].</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? EncoderOutput { get; init; }

    /// <summary>Text: the forward graph's embedding input, float [B, L, D], which the encoder's output feeds.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? EmbeddingInput { get; init; }

    /// <summary>Text: L, the tokens of a prompt (shorter prompts are padded with token 0).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int Length { get; init; }

    /// <summary>Text: D, the width of the encoder's output.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int Width { get; init; }

    /// <summary>Text: the words (index = token id; index 0 is the padding, written as an empty string).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Vocabulary { get; init; }

    /// <summary>Why the spec is impossible, or null when it is valid.</summary>
    public string? CheckError()
    {
        if (string.IsNullOrWhiteSpace(Input))
        {
            return "field 'condition.input' is empty";
        }
        if (Kind == ConditionKind.Text)
        {
            return PromptCodec.CheckError(this);
        }
        if (Classes < 1)
        {
            return $"field 'condition.classes' is {Classes}; a label condition needs at least one class";
        }
        if (NullLabel is { } n && n >= 0 && n < Classes)
        {
            return $"field 'condition.nullLabel' is {n}, one of the classes 0 … {Classes - 1}; it must be another value";
        }
        if (ClassNames.Count != 0 && ClassNames.Count != Classes)
        {
            return $"field 'condition.classNames' has {ClassNames.Count} names for {Classes} classes";
        }
        return null;
    }

    /// <summary>The values the condition input may take: the classes, and the null label when there is one; for a text model
    /// every packed prompt of at most <see cref="Length"/> words (0, the empty prompt, only when it is the null label).</summary>
    public bool Accepts(long value) => Kind == ConditionKind.Text
        ? (value > 0 && value < PromptCodec.Limit(this)) || value == NullLabel
        : (value >= 0 && value < Classes) || value == NullLabel;

    /// <summary>What the condition values are, for messages: <c>classes 0 … 9</c>, or a text model's prompt of at most L words.</summary>
    public string DescribeValues() => Kind == ConditionKind.Text
        ? $"a prompt of at most {Length} words from its vocabulary of {Vocabulary?.Count - 1} words (packed)"
        : $"classes 0 … {Classes - 1}" + (NullLabel is { } n ? $", null label {n}" : "");

    /// <summary>A text model's prompt as its packed condition value, checked word by word.</summary>
    /// <param name="prompt">The prompt, e.g. <c>a dark sneaker</c>: words of letters and digits, case ignored, anything else separates them.</param>
    /// <param name="source">The option or field it came from, for messages (<c>--prompt</c>).</param>
    /// <exception cref="UserInputException">The model takes no prompt, or the prompt is empty, too long, or has a word the model does not know.</exception>
    public long EncodePrompt(string prompt, string source) => Kind != ConditionKind.Text
        ? throw new UserInputException($"{source}: the model is conditioned on a class label, not a prompt; give --label (the server's 'label')")
        : PromptCodec.Encode(this, prompt, source);

    /// <summary>A text model's condition value in words (null for another kind of model, or no value).</summary>
    public string? PromptOf(long? value) => Kind == ConditionKind.Text && value is long v ? DecodePrompt(v) : null;

    /// <summary>A text model's Vʲ for j = 0 … L − 1: token j of a packed prompt is ⌊value / Vʲ⌋ mod V (exact, in int64).</summary>
    public long[] PromptDivisors() => PromptCodec.Divisors(this);

    /// <summary>A text model's Vᴸ: every packed prompt is below it.</summary>
    public long PromptLimit() => PromptCodec.Limit(this);

    /// <summary>A text model's packed value as its words (the empty string for the empty prompt).</summary>
    public string DecodePrompt(long value) => PromptCodec.Decode(this, value);

    /// <summary>A text model's packed value as token ids [<see cref="Length"/>].</summary>
    public long[] Tokens(long value) => PromptCodec.Tokens(this, value);

    /// <summary>Checks a user's label, naming the option or field it came from.</summary>
    /// <exception cref="UserInputException">It is not one of the model's classes.</exception>
    public long RequireLabel(long label, string source)
    {
        if (Kind == ConditionKind.Text)
        {
            throw new UserInputException($"{source}: the model is conditioned on a prompt, not a class label");
        }
        if (label < 0 || label >= Classes)
        {
            throw new UserInputException($"{source} is {label.ToString(CultureInfo.InvariantCulture)}; the model takes class labels 0 … {Classes - 1}");
        }
        return label;
    }

    /// <summary>A condition value as the library was given it: a class label (<see cref="RequireLabel"/>), or a text model's
    /// packed prompt, not the empty one.</summary>
    /// <exception cref="UserInputException">It is not one the model takes.</exception>
    public long RequireValue(long value, string source) => Kind != ConditionKind.Text ? RequireLabel(value, source)
        : value != 0 && Accepts(value) ? value
        : throw new UserInputException($"{source} is {value.ToString(CultureInfo.InvariantCulture)}; the model takes {DescribeValues()} (see ConditionSpec.EncodePrompt)");

    /// <summary>
    /// A query's condition value as a user gave it: a class label (<paramref name="labelOption"/>) for a label model, a prompt
    /// (<paramref name="promptOption"/>) for a text model, neither for an unconditional one (<paramref name="condition"/> null).
    /// </summary>
    /// <exception cref="UserInputException">The one the model needs is missing or wrong, or the other one is given.</exception>
    public static long? Query(ConditionSpec? condition, long? label, string? prompt, string labelOption, string promptOption)
    {
        if (condition is null)
        {
            string? given = label is not null ? labelOption : prompt is not null ? promptOption : null;
            return given is null ? null : throw new UserInputException($"{given}: the model is unconditional; leave {given} out");
        }
        if (condition.Kind == ConditionKind.Text)
        {
            return label is not null
                ? throw new UserInputException($"{labelOption}: the model is conditioned on a prompt, not a class label; give {promptOption}")
                : prompt is null
                ? throw new UserInputException($"{promptOption} is required: the model is conditioned on a prompt ({condition.DescribeValues()})")
                : condition.EncodePrompt(prompt, promptOption);
        }
        if (prompt is not null)
        {
            throw new UserInputException($"{promptOption}: the model is conditioned on a class label, not a prompt; give {labelOption}");
        }
        return label is long l
            ? condition.RequireLabel(l, labelOption)
            : throw new UserInputException($"{labelOption} is required: the model is conditioned on a class label (0 … {condition.Classes - 1})");
    }

    /// <summary>A condition value's name for people: a label's class name when recorded, else the number; a text model's prompt in quotes.</summary>
    public string NameOf(long label) => Kind == ConditionKind.Text ? $"\"{DecodePrompt(label)}\""
        : label >= 0 && label < ClassNames.Count ? ClassNames[(int)label] : label.ToString(CultureInfo.InvariantCulture);
}
