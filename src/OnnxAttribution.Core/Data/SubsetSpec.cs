using System.Globalization;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Data;

/// <summary>
/// Which images of a dataset to use, parsed from a user's text:
/// <c>all</c>; a half-open range <c>start:end</c> (e.g. <c>0:2000</c>; either end may be omitted);
/// a comma list <c>3,5,9</c>; or <c>@file.txt</c>, one index per line (blank lines and lines starting with # skipped).
/// </summary>
public sealed record SubsetSpec
{
    private SubsetSpec(string text, int? start, int? end, IReadOnlyList<int>? indices)
    {
        Text = text;
        Start = start;
        End = end;
        ExplicitIndices = indices;
    }

    /// <summary>Every image.</summary>
    public static SubsetSpec All { get; } = new("all", null, null, null);

    /// <summary>The text this spec was parsed from (normalised for <c>all</c>).</summary>
    public string Text { get; }

    /// <summary>The first index of a range (null: 0, or not a range).</summary>
    public int? Start { get; }

    /// <summary>The end (exclusive) of a range (null: N, or not a range).</summary>
    public int? End { get; }

    /// <summary>The indices of a list or file spec; null for ranges and <c>all</c>.</summary>
    public IReadOnlyList<int>? ExplicitIndices { get; }

    /// <summary>Whether the spec selects every image: <c>all</c>, or a range with neither end given.</summary>
    public bool IsAll => ExplicitIndices is null && Start is null && End is null;

    /// <summary>Parses a spec.</summary>
    /// <exception cref="UserInputException">The text is not a valid spec, or the @file is missing or has a bad line.</exception>
    public static SubsetSpec Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var s = text.Trim();
        if (s.Length == 0 || s.Equals("all", StringComparison.OrdinalIgnoreCase))
        {
            return All;
        }
        if (s[0] == '@')
        {
            var path = s[1..];
            if (!File.Exists(path))
            {
                throw new UserInputException($"subset '{text}': index file not found: {path}");
            }
            var list = new List<int>();
            int lineNo = 0;
            foreach (var raw in File.ReadLines(path))
            {
                lineNo++;
                var line = raw.Trim();
                if (line.Length == 0 || line[0] == '#')
                {
                    continue;
                }
                if (!int.TryParse(line, NumberStyles.None, CultureInfo.InvariantCulture, out int v))
                {
                    throw new UserInputException($"{path}:{lineNo}: '{line}' is not a non-negative integer index");
                }
                list.Add(v);
            }
            return new SubsetSpec(s, null, null, list);
        }
        int colon = s.IndexOf(':');
        if (colon >= 0)
        {
            int? a = ParseBound(s[..colon], text), b = ParseBound(s[(colon + 1)..], text);
            if (a is { } x && b is { } y && y <= x)
            {
                throw new UserInputException(y == x
                    ? $"subset '{text}': the range {x}:{y} is empty (the end is exclusive: {x}:{x + 1} selects image {x})"
                    : $"subset '{text}': the range end {y} is before its start {x}");
            }
            return new SubsetSpec(s, a, b, null);
        }
        var parts = s.Split(',', StringSplitOptions.TrimEntries);
        var indices = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out indices[i]))
            {
                throw new UserInputException($"subset '{text}': '{parts[i]}' is not a non-negative integer index (expected all, start:end, a comma list or @file)");
            }
        }
        return new SubsetSpec(s, null, null, indices);
    }

    /// <summary>The indices this spec selects from a dataset of <paramref name="count"/> images.</summary>
    /// <exception cref="UserInputException">An index or range bound is beyond <paramref name="count"/>, or nothing is selected.</exception>
    public int[] Resolve(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var selected = ResolveIndices(count);
        if (selected.Length == 0)
        {
            throw new UserInputException($"subset '{Text}': selects no images (the dataset has {count}); a store or training set needs at least one");
        }
        return selected;
    }

    private int[] ResolveIndices(int count)
    {
        if (ExplicitIndices is { } list)
        {
            var result = new int[list.Count];
            for (int i = 0; i < list.Count; i++)
            {
                if (list[i] >= count)
                {
                    throw new UserInputException($"subset '{Text}': index {list[i]} is out of range; the dataset has {count} images (valid 0..{count - 1})");
                }
                result[i] = list[i];
            }
            return result;
        }
        int start = Start ?? 0, end = End ?? count;
        if (end > count || start > count)
        {
            throw new UserInputException($"subset '{Text}': range {start}:{end} goes beyond the dataset's {count} images");
        }
        return Enumerable.Range(start, end - start).ToArray();
    }

    /// <summary>The selected images as a new dataset (the same object for <c>all</c>).</summary>
    public ImageDataset Apply(ImageDataset dataset)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        return IsAll ? dataset : dataset.Select(Resolve(dataset.Count));
    }

    /// <inheritdoc/>
    public override string ToString() => Text;

    private static int? ParseBound(string part, string text)
    {
        part = part.Trim();
        if (part.Length == 0)
        {
            return null;
        }
        if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int v))
        {
            throw new UserInputException($"subset '{text}': '{part}' is not a non-negative integer range bound");
        }
        return v;
    }
}
