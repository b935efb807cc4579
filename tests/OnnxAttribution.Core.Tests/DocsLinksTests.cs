using System.Text.RegularExpressions;

namespace OnnxAttribution.Core.Tests;

/// <summary>
/// The documentation's relative links (README, docs/, package and tool readmes): every linked file exists and every
/// #anchor names a heading of its file (GitHub's slugs), so moving a section shows up here instead of as a dead link.
/// </summary>
public sealed partial class DocsLinksTests : TempDirectoryTest
{
    [GeneratedRegex(@"\]\(([^)\s]+)\)")]
    private static partial Regex Link();

    [GeneratedRegex(@"^(#{1,6}) (.*)$")]
    private static partial Regex Heading();

    [GeneratedRegex(@"```.*?```", RegexOptions.Singleline)]
    private static partial Regex Fence();

    [GeneratedRegex(@"[^\w\- ]")]
    private static partial Regex NotSlug();

    private static string Slug(string heading) => NotSlug().Replace(heading.Trim().ToLowerInvariant(), "").Replace(' ', '-');

    /// <summary>The anchors of a Markdown file: its headings outside code fences, as slugs.</summary>
    private static HashSet<string> Anchors(string path)
    {
        var anchors = new HashSet<string>(StringComparer.Ordinal);
        bool fence = false;
        foreach (var line in File.ReadLines(path))
        {
            if (line.StartsWith("```", StringComparison.Ordinal))
            {
                fence = !fence;
            }
            else if (!fence && Heading().Match(line) is { Success: true } m)
            {
                anchors.Add(Slug(m.Groups[2].Value));
            }
        }
        return anchors;
    }

    /// <summary>The broken relative links of the Markdown files under <paramref name="root"/>, as "file: link (why)".</summary>
    internal static List<string> BrokenLinks(string root)
    {
        string[] skipped = ["bin", "obj", "out", "node_modules", ".git", "TestResults"];
        var broken = new List<string>();
        foreach (var file in Directory.EnumerateFiles(root, "*.md", SearchOption.AllDirectories)
            .Where(f => !Path.GetRelativePath(root, f).Split(Path.DirectorySeparatorChar).Any(skipped.Contains)))
        {
            var text = Fence().Replace(File.ReadAllText(file), "");
            foreach (Match m in Link().Matches(text))
            {
                string link = m.Groups[1].Value;
                if (link.StartsWith("http", StringComparison.Ordinal) || link.StartsWith("mailto:", StringComparison.Ordinal))
                {
                    continue;
                }
                int hash = link.IndexOf('#', StringComparison.Ordinal);
                string path = hash < 0 ? link : link[..hash], anchor = hash < 0 ? "" : link[(hash + 1)..];
                string target = path.Length == 0 ? file : Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, path));
                string where = $"{Path.GetRelativePath(root, file)}: {link}";
                if (!File.Exists(target) && !Directory.Exists(target))
                {
                    broken.Add($"{where} (no such file)");
                }
                else if (anchor.Length > 0 && target.EndsWith(".md", StringComparison.Ordinal) && !Anchors(target).Contains(anchor))
                {
                    broken.Add($"{where} (no heading '{anchor}' there)");
                }
            }
        }
        return broken;
    }

    [Test]
    public void EveryRelativeLink_ReachesAFileAndHeading()
    {
        Assert.That(BrokenLinks(RepositoryRoot()), Is.Empty, "broken links in the documentation");
    }

    [Test]
    public void BrokenLinks_MissingFileAndMissingHeading_AreBothFound()
    {
        File.WriteAllText(Path.Combine(TempDir, "a.md"), "# Title\n\n[ok](#title) [gone](b.md) [no heading](a.md#nothing)\n```\n[in code](c.md)\n```\n");

        Assert.That(BrokenLinks(TempDir), Is.EqualTo(new[] { "a.md: b.md (no such file)", "a.md: a.md#nothing (no heading 'nothing' there)" }));
    }
}
