namespace OnnxAttribution.Training.Tests.Support;

/// <summary>Gives each test its own temporary folder, removed in TearDown.</summary>
public abstract class TempDirectoryTest
{
    protected string TempDir { get; private set; } = "";

    [SetUp]
    public void CreateTempDir()
    {
        TempDir = Path.Combine(Path.GetTempPath(), "oa-training-tests", TestContext.CurrentContext.Test.ID + "-" + Guid.NewGuid().ToString("N")[..8]);
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
}
