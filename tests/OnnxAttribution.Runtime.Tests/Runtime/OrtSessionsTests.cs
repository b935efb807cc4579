using Microsoft.ML.OnnxRuntime;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Runtime.Tests.Runtime;

/// <summary>The extra session config entries of ONNX_ATTRIBUTION_ORT_CONFIG (for experiments), parsed and applied.</summary>
public sealed class OrtSessionsTests : TempDirectoryTest
{
    [Test]
    public void ApplyConfig_Entries_ReachTheSession()
    {
        var path = TinyModels.WriteForward(Path.Combine(TempDir, "forward.onnx"), 2, 3);
        using (var plain = new SessionOptions())
        {
            OrtSessions.ApplyConfig(plain, " ; session.set_denormal_as_zero=1 ;");
            using var session = new InferenceSession(path, plain);
        }
        using var options = new SessionOptions();

        // An entry ONNX Runtime acts on: told the file is in its own ORT format, it refuses this ONNX file.
        OrtSessions.ApplyConfig(options, "session.set_denormal_as_zero=1;session.load_model_format=ORT");

        Assert.Throws<OnnxRuntimeException>(() => new InferenceSession(path, options).Dispose());
    }

    [TestCase("session.set_denormal_as_zero")]
    [TestCase("=1")]
    public void ApplyConfig_EntryWithoutKeyAndValue_NamesTheVariableAndEntry(string entry)
    {
        var options = new SessionOptions();

        var e = Assert.Throws<UserInputException>(() => OrtSessions.ApplyConfig(options, entry));

        Assert.That(e!.Message, Does.StartWith(OrtSessions.ConfigVariable).And.Contain($"'{entry}' is not key=value"));
    }
}
