using OnnxAttribution.Training.Tests.Support;

namespace OnnxAttribution.Training.Tests;

/// <summary>
/// The checked-in tiny model (tests/fixtures/tiny-unet, which the method tests in Core.Tests run on) is exactly what
/// exporting <see cref="TinyAttributionModel"/> through TorchSharp writes today, so it cannot go stale unseen. After a
/// deliberate change to the exporter or the U-Net, write it again with
/// <c>ONNX_ATTRIBUTION_WRITE_FIXTURE=1 dotnet test tests/OnnxAttribution.Training.Tests --filter TinyModelFixtureTests</c>.
/// </summary>
[TestFixture]
public sealed class TinyModelFixtureTests : TempDirectoryTest
{
    [Test]
    public void CheckedInFixture_IsTheExportOfTheTinyUNet_ByteForByte()
    {
        var exported = Path.Combine(TempDir, "tiny");
        TinyAttributionModel.Export(exported);
        if (Environment.GetEnvironmentVariable("ONNX_ATTRIBUTION_WRITE_FIXTURE") == "1")
        {
            Directory.CreateDirectory(TinyModelFixture.Directory);
            foreach (var file in TinyModelFixture.Files)
            {
                File.Copy(Path.Combine(exported, file), Path.Combine(TinyModelFixture.Directory, file), overwrite: true);
            }
        }
        foreach (var file in TinyModelFixture.Files)
        {
            Assert.That(File.ReadAllBytes(Path.Combine(TinyModelFixture.Directory, file)), Is.EqualTo(File.ReadAllBytes(Path.Combine(exported, file))),
                $"tests/fixtures/tiny-unet/{file} differs from a fresh export: write it again (see this test's summary)");
        }
    }

    [Test]
    public void Export_Twice_SameBytes()
    {
        TinyAttributionModel.Export(Path.Combine(TempDir, "a"));
        TinyAttributionModel.Export(Path.Combine(TempDir, "b"));
        foreach (var file in TinyModelFixture.Files)
        {
            Assert.That(File.ReadAllBytes(Path.Combine(TempDir, "a", file)), Is.EqualTo(File.ReadAllBytes(Path.Combine(TempDir, "b", file))), file);
        }
    }
}
