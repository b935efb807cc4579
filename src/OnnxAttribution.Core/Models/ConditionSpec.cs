using System.Globalization;

namespace OnnxAttribution.Core.Models;

/// <summary>
/// The condition a model takes besides x_t and t (<c>model.json</c> field <c>condition</c>; absent for an unconditional
/// model). Every image the engine handles — a training row, a generated or given query — carries one condition value, an
/// int64: for a <see cref="ConditionKind.Label"/> model its class label, bound to the graphs' input <see cref="Input"/>
/// for every (t, ε) pair of that image.
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

    /// <summary>Why the spec is impossible, or null when it is valid.</summary>
    public string? CheckError()
    {
        if (string.IsNullOrWhiteSpace(Input))
        {
            return "field 'condition.input' is empty";
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

    /// <summary>The values the condition input may take: the classes, and the null label when there is one.</summary>
    public bool Accepts(long value) => (value >= 0 && value < Classes) || value == NullLabel;

    /// <summary>Checks a user's label, naming the option or field it came from.</summary>
    /// <exception cref="UserInputException">It is not one of the model's classes.</exception>
    public long RequireLabel(long label, string source)
    {
        if (label < 0 || label >= Classes)
        {
            throw new UserInputException($"{source} is {label.ToString(CultureInfo.InvariantCulture)}; the model takes class labels 0 … {Classes - 1}");
        }
        return label;
    }

    /// <summary>
    /// A query's label as a user gave it (<paramref name="option"/>, e.g. <c>--label</c>): required by a conditional model and
    /// checked against its classes, refused by an unconditional one (<paramref name="condition"/> null).
    /// </summary>
    /// <exception cref="UserInputException">It is missing, out of range, or given to an unconditional model.</exception>
    public static long? QueryLabel(ConditionSpec? condition, long? label, string option)
    {
        if (condition is null)
        {
            return label is null ? null : throw new UserInputException($"{option}: the model is unconditional; leave {option} out");
        }
        return label is long l
            ? condition.RequireLabel(l, option)
            : throw new UserInputException($"{option} is required: the model is conditioned on a class label (0 … {condition.Classes - 1})");
    }

    /// <summary>A label's name for people: its class name when recorded, else the number.</summary>
    public string NameOf(long label) =>
        label >= 0 && label < ClassNames.Count ? ClassNames[(int)label] : label.ToString(CultureInfo.InvariantCulture);
}
