using System.Text.RegularExpressions;

namespace OnnxAttribution.Core.Tests;

/// <summary>
/// The repository's size rules: no C# file over 600 lines, no line over 200 characters, no method over 100, except the
/// methods docs/explanation/how-it-works.md names with its reason (generated code under obj/ aside), and every public
/// type in a file of its name.
/// </summary>
public sealed partial class SourceSizeTests : TempDirectoryTest
{
    private const int MaxFileLines = 600;
    private const int MaxMethodLines = 100;
    private const int MaxLineCharacters = 200;

    /// <summary>Methods allowed past <see cref="MaxMethodLines"/>, as "File.cs: Method"; docs/explanation/how-it-works.md says why for each.</summary>
    private static readonly string[] LongMethods =
    [
        "ShapeInference.cs: Infer",
        "OpsetAdapter.cs: Up",
        "VjpBuilder.cs: BuildCore",
        "GradientRules.Linear.cs: Conv",
        "ServerApp.cs: Build",
        "MoreOpGradientTests.cs: Cases",
    ];

    private static IEnumerable<string> SourceFiles()
    {
        var root = RepositoryRoot();
        return new[] { "src", "tests", "tools", "samples" }
            .Select(d => Path.Combine(root, d))
            .Where(Directory.Exists)
            .SelectMany(d => Directory.EnumerateFiles(d, "*.cs", SearchOption.AllDirectories))
            .Where(f => !f.Split(Path.DirectorySeparatorChar).Any(part => part is "obj" or "bin"));
    }

    /// <summary>A member signature ending its line with ')' (a method or constructor), its body's '{' on the next line.</summary>
    [GeneratedRegex(@"^\s*(?:(?:public|private|internal|protected|static|override|async|sealed|virtual|unsafe|partial|new|extern)\s+)+" +
        @"(?!.*\b(?:class|record|struct|interface)\b)[^=;]*?\b(\w+)\s*(?:<[^()=]*>)?\(.*\)\s*$")]
    private static partial Regex Signature();

    /// <summary>(method name, first line, length in lines) of every method in <paramref name="lines"/> whose body is a brace block.</summary>
    internal static IEnumerable<(string Name, int Line, int Length)> Methods(IReadOnlyList<string> lines)
    {
        for (int i = 0; i + 1 < lines.Count; i++)
        {
            var match = Signature().Match(lines[i]);
            if (!match.Success || lines[i + 1].Trim() != "{")
            {
                continue;
            }
            int indent = lines[i + 1].Length - lines[i + 1].TrimStart().Length;
            int end = i + 2;
            while (end < lines.Count && !(lines[end].Trim() == "}" && lines[end].Length - lines[end].TrimStart().Length == indent))
            {
                end++;
            }
            yield return (match.Groups[1].Value, i + 1, end - i + 1);
        }
    }

    /// <summary>A public top-level type declaration (file-scoped namespaces: it starts its line).</summary>
    [GeneratedRegex(@"^public\s+(?:(?:static|sealed|abstract|readonly|partial|unsafe|ref)\s+)*(?:class|record\s+struct|record|struct|interface|enum)\s+(\w+)")]
    private static partial Regex PublicType();

    [Test]
    public void EveryPublicType_LivesInAFileOfItsName()
    {
        // Internal helpers may sit beside the type they serve; a type others use is found by its name.
        var misplaced = SourceFiles().Where(f => f.Contains($"{Path.DirectorySeparatorChar}src{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .SelectMany(f => File.ReadLines(f).Select(l => PublicType().Match(l)).Where(m => m.Success)
                .Where(m => m.Groups[1].Value != Path.GetFileName(f).Split('.')[0])
                .Select(m => $"{Path.GetRelativePath(RepositoryRoot(), f)}: {m.Groups[1].Value}"))
            .ToList();
        Assert.That(misplaced, Is.Empty, "public types in a file named after something else: give each its own file");
    }

    [Test]
    public void EveryLine_AtMost200Characters()
    {
        var tooWide = SourceFiles()
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (Where: $"{Path.GetRelativePath(RepositoryRoot(), f)}:{i + 1}", line.Length)))
            .Where(l => l.Length > MaxLineCharacters)
            .Select(l => $"{l.Where} ({l.Length} characters)").ToList();
        Assert.That(tooWide, Is.Empty, $"lines over {MaxLineCharacters} characters: wrap them");
    }

    [Test]
    public void EveryFile_AtMost600Lines()
    {
        var files = SourceFiles().ToList();
        Assert.That(files, Has.Count.GreaterThan(100), "the source files were found");
        var tooLong = files.Select(f => (File: f, Lines: File.ReadLines(f).Count())).Where(f => f.Lines > MaxFileLines)
            .Select(f => $"{Path.GetRelativePath(RepositoryRoot(), f.File)}: {f.Lines} lines").ToList();
        Assert.That(tooLong, Is.Empty, $"files over {MaxFileLines} lines: split them");
    }

    [Test]
    public void EveryMethod_AtMost100Lines_OrNamedInHowItWorks()
    {
        var found = SourceFiles()
            .SelectMany(f => Methods(File.ReadAllLines(f)).Where(m => m.Length > MaxMethodLines)
                .Select(m => (Key: $"{Path.GetFileName(f)}: {m.Name}", Where: $"{Path.GetRelativePath(RepositoryRoot(), f)}:{m.Line}", m.Length)))
            .ToList();
        Assert.That(found.Where(m => !LongMethods.Contains(m.Key)).Select(m => $"{m.Where} {m.Key} ({m.Length} lines)"), Is.Empty,
            $"methods over {MaxMethodLines} lines: split them, or say in docs/explanation/how-it-works.md why not and list them here");
        Assert.That(LongMethods.Where(k => !found.Any(m => m.Key == k)), Is.Empty, "a listed method is no longer long: take it off the list and docs/explanation/how-it-works.md");
        var readme = File.ReadAllText(Path.Combine(RepositoryRoot(), "docs", "explanation", "how-it-works.md"));
        foreach (var key in LongMethods)
        {
            var method = key[(key.IndexOf(": ", StringComparison.Ordinal) + 2)..];
            Assert.That(readme, Does.Contain("." + method + "`"), $"docs/explanation/how-it-works.md says why {key} is long");
        }
    }

    [Test]
    public void Methods_MeasuresABraceBlockFromSignatureToClosingBrace()
    {
        string[] lines =
        [
            "internal static class C",
            "{",
            "    public static int Short(int x)",
            "    {",
            "        if (x > 0)",
            "        {",
            "            return 1;",
            "        }",
            "        return 0;",
            "    }",
            "",
            "    private static void Other() => Short(1);",
            "",
            "    private sealed record Pair(int A, int B)",
            "    {",
            "    }",
            "",
            "    public static readonly IReadOnlyDictionary<string, int> Table = new Dictionary<string, int>(StringComparer.Ordinal)",
            "    {",
            "    };",
            "}",
        ];
        Assert.That(Methods(lines).ToList(), Is.EqualTo(new[] { ("Short", 3, 8) }));
    }
}
