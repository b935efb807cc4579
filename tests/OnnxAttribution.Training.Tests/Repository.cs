using OnnxAttribution.Core.Data;
using OnnxAttribution.Training.Tests.Support;

namespace OnnxAttribution.Training.Tests;

/// <summary>Shipped files of the source tree the tests were built from.</summary>
internal static class Repository
{
    /// <summary>Finds the embedded dataset under models/data whatever the build's output folder.</summary>
    public static DatasetLocator Locator { get; } = new(EmbeddedDataDirectory: Path.Combine(TestData.RepositoryRoot(), "models", "data"));
}
