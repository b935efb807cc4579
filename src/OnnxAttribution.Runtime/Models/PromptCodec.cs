using System.Text;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Runtime.Models;

/// <summary>
/// A text model's prompts as int64 condition values: word j of the prompt (its token id, 1 … V − 1, V the vocabulary's size
/// with the padding) is digit j of the value in base V, so token j = ⌊value / Vʲ⌋ mod V and the empty prompt is 0. The
/// sessions unpack the same way in ONNX (<c>Div</c>, <c>Mod</c>); Vᴸ must stay under 2⁶².
/// </summary>
public static class PromptCodec
{
    /// <summary>Vᴸ: every packed value is below it.</summary>
    public static long Limit(ConditionSpec spec)
    {
        long limit = 1;
        for (int j = 0; j < spec.Length; j++)
        {
            limit = checked(limit * spec.Vocabulary!.Count);
        }
        return limit;
    }

    /// <summary>Vʲ for j = 0 … L − 1, the divisors that unpack token j.</summary>
    public static long[] Divisors(ConditionSpec spec)
    {
        var d = new long[spec.Length];
        long v = 1;
        for (int j = 0; j < d.Length; j++)
        {
            d[j] = v;
            v = j + 1 < d.Length ? checked(v * spec.Vocabulary!.Count) : v;
        }
        return d;
    }

    /// <summary>Why <paramref name="spec"/> cannot carry prompts (vocabulary or length out of range), or null when it can.</summary>
    public static string? CheckError(ConditionSpec spec)
    {
        if (string.IsNullOrWhiteSpace(spec.Encoder) || spec.Encoder.IndexOfAny(['/', '\\']) >= 0)
        {
            return $"field 'condition.encoder' is '{spec.Encoder}'; a text condition names its caption encoder's file in the model folder";
        }
        if (string.IsNullOrWhiteSpace(spec.EncoderInput) || string.IsNullOrWhiteSpace(spec.EncoderOutput))
        {
            return "fields 'condition.encoderInput' and 'condition.encoderOutput' name the caption encoder's token input and embedding output";
        }
        if (string.IsNullOrWhiteSpace(spec.EmbeddingInput) || spec.EmbeddingInput == spec.Input)
        {
            return $"field 'condition.embeddingInput' is '{spec.EmbeddingInput}'; it names the forward graph's float [B, L, D] input, other than '{spec.Input}'";
        }
        if (spec.Length < 1 || spec.Width < 1)
        {
            return $"fields 'condition.length' and 'condition.width' are {spec.Length} and {spec.Width}; both must be positive";
        }
        if (spec.Classes != 0)
        {
            return $"field 'condition.classes' is {spec.Classes}; a text condition has no classes";
        }
        if (spec.NullLabel is { } n && n != 0)
        {
            return $"field 'condition.nullLabel' is {n}; a text model's null condition is the empty prompt, 0";
        }
        if (spec.Vocabulary is not { Count: >= 2 } words || words[0].Length != 0)
        {
            return "field 'condition.vocabulary' needs the padding (\"\") first and at least one word";
        }
        for (int i = 1; i < words.Count; i++)
        {
            if (words[i].Length == 0 || !words[i].All(IsWordChar) || words[i] != words[i].ToLowerInvariant())
            {
                return $"field 'condition.vocabulary' word {i} is '{words[i]}'; words are lower-case letters and digits";
            }
            if (words.Take(i).Contains(words[i], StringComparer.Ordinal))
            {
                return $"field 'condition.vocabulary' has '{words[i]}' twice";
            }
        }
        return Math.Log2(words.Count) * spec.Length >= 62
            ? $"a prompt of {spec.Length} words from {words.Count} tokens does not pack into an int64 (V^L must stay under 2^62)"
            : null;
    }

    /// <summary>The packed prompt of <paramref name="prompt"/>; <paramref name="source"/> (an option or field) is named in errors.</summary>
    public static long Encode(ConditionSpec spec, string prompt, string source)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var words = Words(prompt);
        if (words.Count == 0)
        {
            throw new UserInputException($"{source} is empty; the model is conditioned on a prompt: give one (e.g. '{Example(spec)}')");
        }
        if (words.Count > spec.Length)
        {
            throw new UserInputException($"{source} has {words.Count} words; the model reads at most {spec.Length}");
        }
        var vocabulary = spec.Vocabulary!;
        long value = 0, digit = 1;
        foreach (var word in words)
        {
            int id = IndexOf(vocabulary, word);
            if (id < 1)
            {
                throw new UserInputException($"{source}: the word '{word}' is not in the model's vocabulary ({string.Join(" ", vocabulary.Skip(1))})");
            }
            value += id * digit;
            digit *= vocabulary.Count;
        }
        return value;
    }

    /// <summary>The word tokens of the packed prompt <paramref name="value"/>.</summary>
    public static long[] Tokens(ConditionSpec spec, long value)
    {
        if (!spec.Accepts(value))
        {
            throw new ArgumentOutOfRangeException(nameof(value), value, $"not a packed prompt of this model ({spec.DescribeValues()})");
        }
        var tokens = new long[spec.Length];
        long v = value, n = spec.Vocabulary!.Count;
        for (int j = 0; j < tokens.Length; j++)
        {
            tokens[j] = v % n;
            v /= n;
        }
        return tokens;
    }

    /// <summary>The words of the packed prompt <paramref name="value"/>.</summary>
    public static string Decode(ConditionSpec spec, long value)
    {
        var text = new StringBuilder();
        foreach (long id in Tokens(spec, value).Where(id => id != 0))
        {
            text.Append(text.Length == 0 ? "" : " ").Append(spec.Vocabulary![(int)id]);
        }
        return text.ToString();
    }

    /// <summary>The prompt's words: runs of letters and digits, lower-cased.</summary>
    public static List<string> Words(string text)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        foreach (char c in text.ToLowerInvariant().Append(' '))
        {
            if (IsWordChar(c))
            {
                word.Append(c);
            }
            else if (word.Length > 0)
            {
                words.Add(word.ToString());
                word.Clear();
            }
        }
        return words;
    }

    private static bool IsWordChar(char c) => c is (>= 'a' and <= 'z') or (>= '0' and <= '9');

    private static int IndexOf(IReadOnlyList<string> words, string word)
    {
        for (int i = 1; i < words.Count; i++)
        {
            if (string.Equals(words[i], word, StringComparison.Ordinal))
            {
                return i;
            }
        }
        return -1;
    }

    private static string Example(ConditionSpec spec) => spec.ClassNames.Count > 0
        ? "a " + string.Join(" ", Words(spec.ClassNames[^1]))
        : string.Join(" ", spec.Vocabulary!.Skip(1).Take(Math.Min(spec.Length, 3)));
}
