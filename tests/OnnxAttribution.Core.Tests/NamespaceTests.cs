using System.Text.RegularExpressions;

namespace OnnxAttribution.Core.Tests;

/// <summary>
/// Namespaces follow assemblies (docs/contributing.md): every file of src/&lt;Assembly&gt; declares a namespace of that
/// assembly, except Core's facade (namespace OnnxAttribution).
/// </summary>
[TestFixture]
public sealed partial class NamespaceTests
{
    [Test]
    public void EverySourceFile_DeclaresANamespaceOfItsAssembly()
    {
        var src = Path.Combine(RepositoryFiles.Root, "src");
        var wrong = new List<string>();
        int files = 0;
        foreach (var file in Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Split(Path.DirectorySeparatorChar).Any(part => part is "obj" or "bin")))
        {
            var relative = Path.GetRelativePath(src, file).Replace(Path.DirectorySeparatorChar, '/');
            string assembly = relative.Split('/')[0];
            foreach (Match m in Namespace().Matches(File.ReadAllText(file)))
            {
                files++;
                string ns = m.Groups[1].Value;
                bool ok = ns == assembly || ns.StartsWith(assembly + ".", StringComparison.Ordinal) || (assembly == "OnnxAttribution.Core" && ns == "OnnxAttribution");
                if (!ok)
                {
                    wrong.Add($"{relative}: namespace {ns}");
                }
            }
        }
        Assert.That(files, Is.GreaterThan(300), "the source files were found");
        Assert.That(wrong, Is.Empty);
    }

    [GeneratedRegex(@"^namespace\s+([\w.]+)", RegexOptions.Multiline)]
    private static partial Regex Namespace();
}
