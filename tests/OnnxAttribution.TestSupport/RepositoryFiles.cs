namespace OnnxAttribution.TestSupport;

/// <summary>
/// The source tree the tests were built from (recorded at build time by Directory.Build.props, as the binaries may live
/// under another artifacts path), and the shipped files in it: the one place every test project finds them.
/// </summary>
public static class RepositoryFiles
{
    /// <summary>The repository root, a full path.</summary>
    public static string Root { get; } = Path.GetFullPath(typeof(RepositoryFiles).Assembly
        .GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
        .Cast<System.Reflection.AssemblyMetadataAttribute>()
        .Single(a => a.Key == "RepositoryRoot").Value!);

    /// <summary>The shipped model, models/fm16.</summary>
    public static string ShippedModel => Path.Combine(Root, "models", "fm16");
}
