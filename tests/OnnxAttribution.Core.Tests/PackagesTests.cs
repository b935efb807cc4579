using System.Diagnostics;

namespace OnnxAttribution.Core.Tests;

/// <summary>
/// The packages as a user gets them: scripts/sample.sh packs the libraries and the edge tool into a local feed, builds
/// samples/AttributeOnePng against the packages alone and runs it, then installs the tool from the feed into an empty
/// folder and runs its 'attribute' on the sample's store (README, "Library").
/// </summary>
[Category("Slow")]
public sealed class PackagesTests : TempDirectoryTest
{
    [Test]
    public void SampleScript_PacksBuildsTheSampleAndInstallsTheTool()
    {
        var start = new ProcessStartInfo("bash", ["scripts/sample.sh"])
        {
            WorkingDirectory = RepositoryRoot(),
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"scripts/sample.sh ran past 10 minutes\n{stdout.Result}\n{stderr.Result}");
        }

        Assert.That(process.ExitCode, Is.Zero, $"{stdout.Result}\n{stderr.Result}");
        Assert.That(stdout.Result, Does.Contain("sample: tool ok (onnx-attribution-edge").And.Contain("sample: ok (packages"));
    }
}
