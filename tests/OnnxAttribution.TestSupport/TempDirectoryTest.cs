namespace OnnxAttribution.TestSupport;

/// <summary>Gives each test its own temporary folder under the test work directory, removed after the test.</summary>
public abstract class TempDirectoryTest
{
    protected string TempDir { get; private set; } = "";

    [SetUp]
    public void CreateTempDir()
    {
        TempDir = Path.Combine(TestContext.CurrentContext.WorkDirectory, "tmp",
            $"{TestContext.CurrentContext.Test.MethodName}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(TempDir);
    }

    [TearDown]
    public void RemoveTempDir()
    {
        if (Directory.Exists(TempDir))
        {
            Directory.Delete(TempDir, recursive: true);
        }
    }

    /// <summary>The repository root (<see cref="RepositoryFiles.Root"/>).</summary>
    protected static string RepositoryRoot() => RepositoryFiles.Root;
}
