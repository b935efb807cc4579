using OnnxAttribution.Training.Evaluation;

namespace OnnxAttribution.Training.Tests;

/// <summary>
/// lds*.json read as typed records (<see cref="LdsResultFile"/>): every result file kept in docs/results, of every vintage
/// of the format, reads and gives back exactly the tables of its lds*.md beside it (whose first line names the file it
/// was generated from, which a copy renames).
/// </summary>
[TestFixture]
public sealed class LdsResultFileTests
{
    private static IEnumerable<string> ResultFiles() =>
        Directory.EnumerateFiles(Path.Combine(RepositoryFiles.Root, "docs", "results"), "lds*.json", SearchOption.AllDirectories)
            .Where(f => File.Exists(Path.ChangeExtension(f, ".md")))
            .Select(f => Path.GetRelativePath(RepositoryFiles.Root, f))
            .Order(StringComparer.Ordinal);

    [TestCaseSource(nameof(ResultFiles))]
    public void CheckedInResult_ReadsTyped_AndGivesBackItsMarkdown(string file)
    {
        var path = Path.Combine(RepositoryFiles.Root, file);

        var markdown = LdsReportWriter.LdsMarkdown(LdsReportWriter.ReadResult(path), path);

        var expected = File.ReadAllText(Path.ChangeExtension(path, ".md"));
        Assert.That(Body(markdown), Is.EqualTo(Body(expected)));
        Assert.That(Body(markdown), Does.Contain("| method |"));
    }

    [Test]
    public void ResultFiles_AreThere()
    {
        Assert.That(ResultFiles().Count(), Is.GreaterThanOrEqualTo(20), "docs/results keeps the LDS results with their tables");
    }

    [Test]
    public void ReadResult_NotAnLdsResult_RefusedNamingTheFile()
    {
        var dir = Directory.CreateTempSubdirectory("oa-lds-file-").FullName;
        try
        {
            var notJson = Path.Combine(dir, "lds.json");
            File.WriteAllText(notJson, "{ not json");
            Assert.That(() => LdsReportWriter.ReadResult(notJson), Throws.TypeOf<Primitives.UserInputException>().With.Message.Contains(notJson).And.Message.Contains("not an lds result"));
            File.WriteAllText(notJson, """{ "data": "embedded" }""");
            Assert.That(() => LdsReportWriter.ReadResult(notJson), Throws.TypeOf<Primitives.UserInputException>().With.Message.Contains("no 'methods' array"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>The Markdown after its first line ("Generated from FILE by …").</summary>
    private static string Body(string markdown) => markdown[(markdown.IndexOf('\n', StringComparison.Ordinal) + 1)..].ReplaceLineEndings("\n").TrimEnd();
}
