using System.Text.RegularExpressions;

namespace OnnxAttribution.Core.Tests;

/// <summary>
/// The packaged libraries' public API is frozen (Microsoft.CodeAnalysis.PublicApiAnalyzers): each lists its API in
/// PublicAPI.Shipped.txt / PublicAPI.Unshipped.txt, which the build checks against the code (a public member missing from
/// the lists, or listed and gone, fails the build). These tests check that the freeze is wired for every library package.
/// </summary>
[TestFixture]
public sealed class PublicApiTests
{
    /// <summary>The library packages, as Directory.Build.props makes them packable (the edge tool, a .NET tool, aside).</summary>
    private static IEnumerable<string> Libraries() =>
        Regex.Matches(File.ReadAllLines(Path.Combine(RepositoryFiles.Root, "Directory.Build.props")).Single(l => l.Contains("<IsPackable Condition=", StringComparison.Ordinal)),
                @"'\$\(MSBuildProjectName\)' == '([\w.]+)'")
            .Select(m => m.Groups[1].Value).Where(name => name.StartsWith("OnnxAttribution.", StringComparison.Ordinal) && name != "OnnxAttribution.Edge")
            .Distinct().ToList();

    [Test]
    public void LibraryPackages_AreInTheApiReferenceAndTheSampleFeed()
    {
        var libraries = Libraries().ToList();
        Assert.That(libraries, Has.Count.GreaterThanOrEqualTo(6).And.Contain("OnnxAttribution.Core"), "the packable libraries were read");
        var docfx = File.ReadAllText(Path.Combine(RepositoryFiles.Root, "docs", "api", "docfx.json"));
        var sample = File.ReadAllLines(Path.Combine(RepositoryFiles.Root, "scripts", "sample.sh"));
        // The words of sample.sh's loop that packs the libraries, and of the one that refuses a stale copy in the NuGet cache.
        var packs = sample.Single(l => l.StartsWith("for project in ", StringComparison.Ordinal)).Split(' ', ';');
        var guarded = sample.Where(l => l.Contains("onnxattribution.", StringComparison.Ordinal)).SelectMany(l => l.Split(' ', ';', '\\')).ToList();
        foreach (var library in libraries)
        {
            Assert.That(docfx, Does.Contain($"{library}/{library}.csproj"), $"docs/api/docfx.json documents {library}");
            Assert.That(packs, Does.Contain(library), $"scripts/sample.sh packs {library}");
            Assert.That(guarded, Does.Contain(library.ToLowerInvariant()), $"scripts/sample.sh refuses a cached copy of {library}");
        }
    }

    [TestCaseSource(nameof(Libraries))]
    public void Library_ListsItsPublicApi_WithNullability(string library)
    {
        var dir = Path.Combine(RepositoryFiles.Root, "src", library);
        var shipped = File.ReadAllLines(Path.Combine(dir, "PublicAPI.Shipped.txt"));
        var unshipped = File.ReadAllLines(Path.Combine(dir, "PublicAPI.Unshipped.txt"));

        Assert.That(shipped[0], Is.EqualTo("#nullable enable"));
        Assert.That(unshipped[0], Is.EqualTo("#nullable enable"));
        // A library split out after the last release lists its API as unshipped (and the library it left, as *REMOVED*).
        Assert.That(shipped.Length + unshipped.Length, Is.GreaterThan(50), "the API is listed");
        Assert.That(shipped.Skip(1).Concat(unshipped.Skip(1)), Is.Unique, "a member is listed once");
    }

    [Test]
    public void Build_ChecksTheListsOfEveryLibraryPackage()
    {
        var props = File.ReadAllText(Path.Combine(RepositoryFiles.Root, "Directory.Build.props"));
        Assert.That(props, Does.Contain("""<PackageReference Include="Microsoft.CodeAnalysis.PublicApiAnalyzers" PrivateAssets="all" />"""));
        // The lists hold the facade and the engine's main types: the ones a user of the packages calls.
        var core = File.ReadAllText(Path.Combine(RepositoryFiles.Root, "src", "OnnxAttribution.Core", "PublicAPI.Shipped.txt"));
        Assert.That(core, Does.Contain("static OnnxAttribution.Attributor.Open(string! modelDirectory, string! storeDirectory"));
        Assert.That(core, Does.Contain("OnnxAttribution.Core.Attribution.Methods.IAttributionMethod.Capabilities.get"));
    }
}
