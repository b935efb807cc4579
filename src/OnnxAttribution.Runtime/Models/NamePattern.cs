using System.Text.RegularExpressions;

namespace OnnxAttribution.Runtime.Models;

/// <summary>Glob-style name patterns: <c>*</c> matches any run of characters (dots included), <c>?</c> one character; the whole name must match.</summary>
internal static class NamePattern
{
    /// <summary>Whether <paramref name="name"/> matches <paramref name="pattern"/>.</summary>
    public static bool Matches(string pattern, string name)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        ArgumentNullException.ThrowIfNull(name);
        string regex = "^" + Regex.Escape(pattern).Replace("\\*", ".*", StringComparison.Ordinal).Replace("\\?", ".", StringComparison.Ordinal) + "$";
        return Regex.IsMatch(name, regex, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
    }
}
