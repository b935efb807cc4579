namespace OnnxAttribution.Core.Tests;

/// <summary>
/// The packaged libraries' public API is frozen (Microsoft.CodeAnalysis.PublicApiAnalyzers): each lists its API in
/// PublicAPI.Shipped.txt / PublicAPI.Unshipped.txt, which the build checks against the code (a public member missing from
/// the lists, or listed and gone, fails the build). These tests check that the freeze is wired for every library package.
/// </summary>
[TestFixture]
public sealed class PublicApiTests
{
    private static readonly string[] Libraries =
        ["OnnxAttribution.Primitives", "OnnxAttribution.Onnx", "OnnxAttribution.Store", "OnnxAttribution.Imaging", "OnnxAttribution.Runtime", "OnnxAttribution.Core"];

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
