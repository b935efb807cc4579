namespace OnnxAttribution.Primitives;

/// <summary>
/// A setting given a value it cannot take. It names the setting as the library calls it (<see cref="Setting"/>, e.g.
/// <c>Damping</c>), so each front end can say it in its own words: <see cref="Exception.Message"/> reads
/// "Damping = 0: …; use Damping = 10", and <see cref="Describe"/> lets the command line say "--damping 0: …; use --damping 10".
/// </summary>
public sealed class SettingException : UserInputException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="setting">The setting's name in the library (a property or parameter name, PascalCase).</param>
    /// <param name="value">The value given.</param>
    /// <param name="problem">Why it does not do, without naming the setting again.</param>
    /// <param name="suggestion">A value that would do, if there is one.</param>
    /// <param name="inner">The exception that caused it, if any.</param>
    public SettingException(string setting, object? value, string problem, object? suggestion = null, Exception? inner = null)
        : base(Format(setting, value, problem, suggestion, (name, v) => $"{name} = {v}"), inner!)
    {
        Setting = setting;
        Value = value;
        Problem = problem;
        Suggestion = suggestion;
    }

    /// <summary>The setting's name in the library.</summary>
    public string Setting { get; }

    /// <summary>The setting's name in kebab case (NoiseDraws → noise-draws), as command lines and configuration keys write it.</summary>
    public string KebabName => string.Concat(Setting.Select((c, i) =>
        char.IsUpper(c) ? (i > 0 ? "-" : "") + char.ToLowerInvariant(c) : c.ToString()));

    /// <summary>The value given.</summary>
    public object? Value { get; }

    /// <summary>Why it does not do.</summary>
    public string Problem { get; }

    /// <summary>A value that would do, or null.</summary>
    public object? Suggestion { get; }

    /// <summary>The message with the setting and a value written by <paramref name="show"/> (setting name, value as text).</summary>
    public string Describe(Func<string, string, string> show)
    {
        ArgumentNullException.ThrowIfNull(show);
        return Format(Setting, Value, Problem, Suggestion, show);
    }

    /// <summary>A value as text: enum members in lower case, numbers in the invariant culture.</summary>
    public static string Show(object? value) => value switch
    {
        null => "(none)",
        string { Length: 0 } => "\"\"",
        Enum e => e.ToString().ToLowerInvariant(),
        IFormattable f => f.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    private static string Format(string setting, object? value, string problem, object? suggestion, Func<string, string, string> show) =>
        $"{show(setting, Show(value))}: {problem}{(suggestion is null ? "" : $"; use {show(setting, Show(suggestion))}")}";
}
