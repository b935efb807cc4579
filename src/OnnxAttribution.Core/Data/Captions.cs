using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;

namespace OnnxAttribution.Core.Data;

/// <summary>
/// Captions for a labelled image dataset, for text-conditioned models trained here: "a {shade} {class name}", the shade
/// "dark" or "light" by the image's own pixels (the mean of its foreground, pixels above −0.8 in [−1, 1], below or above 0),
/// so a row's caption depends on that row alone and is the same in every subset of the data.
/// </summary>
public static class Captions
{
    /// <summary>The pixel value above which a pixel counts as foreground (the background of Fashion-MNIST is −1).</summary>
    public const float ForegroundThreshold = -0.8f;

    /// <summary>The words of a vocabulary for <paramref name="classNames"/>: the padding (""), "a", "dark", "light", then the
    /// class names' words in order of first use.</summary>
    public static IReadOnlyList<string> Vocabulary(IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(classNames);
        var words = new List<string> { "", "a", "dark", "light" };
        foreach (var word in classNames.SelectMany(PromptCodec.Words).Where(w => !words.Contains(w)))
        {
            words.Add(word);
        }
        return words;
    }

    /// <summary>The longest caption's words: "a", the shade, and the longest class name's.</summary>
    public static int Length(IReadOnlyList<string> classNames) => 2 + classNames.Max(n => PromptCodec.Words(n).Count);

    /// <summary>The class names a caption uses: the given names, or the labels' numbers when the dataset has none.</summary>
    public static IReadOnlyList<string> ClassNames(IReadOnlyList<string> classNames, int classes) =>
        classNames.Count == classes ? classNames : Enumerable.Range(0, classes).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();

    /// <summary>The caption of one image of class <paramref name="className"/>.</summary>
    public static string Of(ReadOnlySpan<float> pixels, string className)
    {
        double sum = 0;
        int count = 0;
        foreach (float v in pixels)
        {
            if (v > ForegroundThreshold)
            {
                sum += v;
                count++;
            }
        }
        return $"a {(count > 0 && sum / count > 0 ? "light" : "dark")} {className}";
    }

    /// <summary>
    /// The condition of the i-th evaluation query (LDS, remove-and-retrain): class label i mod C; for a text model the caption
    /// "a {shade} {class i mod C}", shade dark for even ⌊i / C⌋ and light for odd — every class, then every class in the other shade.
    /// </summary>
    public static long EvaluationCondition(ConditionSpec condition, int i)
    {
        ArgumentNullException.ThrowIfNull(condition);
        if (condition.Kind != ConditionKind.Text)
        {
            return i % condition.Classes;
        }
        int classes = condition.ClassNames.Count;
        string shade = (i / classes) % 2 == 0 ? "dark" : "light";
        return condition.EncodePrompt($"a {shade} {condition.ClassNames[i % classes]}", $"evaluation query {i}'s caption");
    }

    /// <summary>Every row's caption, packed for <paramref name="condition"/> (a text model whose vocabulary holds the
    /// dataset's class names).</summary>
    /// <param name="condition">The model's text condition.</param>
    /// <param name="data">The rows, with labels.</param>
    /// <param name="classNames">The class names (index = label), as the model was trained with them.</param>
    /// <param name="model">The model, for messages.</param>
    /// <exception cref="UserInputException">The dataset has no labels, or a caption has a word the model does not know.</exception>
    public static long[] Packed(ConditionSpec condition, ImageDataset data, IReadOnlyList<string> classNames, string model)
    {
        ArgumentNullException.ThrowIfNull(condition);
        ArgumentNullException.ThrowIfNull(data);
        if (data.Labels is not { } labels)
        {
            throw new UserInputException($"dataset '{data.Name}' has no labels, and model {model} is conditioned on a prompt: its rows' captions " +
                "(\"a dark sneaker\") are made from their labels");
        }
        var result = new long[data.Count];
        for (int i = 0; i < result.Length; i++)
        {
            if (labels[i] < 0 || labels[i] >= classNames.Count)
            {
                throw new UserInputException($"dataset '{data.Name}' row {i} has label {labels[i]}; model {model} knows {classNames.Count} classes");
            }
            result[i] = condition.EncodePrompt(Of(data.Image(i), classNames[labels[i]]), $"dataset '{data.Name}' row {i}'s caption");
        }
        return result;
    }
}
