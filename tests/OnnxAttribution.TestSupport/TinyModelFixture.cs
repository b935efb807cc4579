namespace OnnxAttribution.TestSupport;

/// <summary>
/// A small untrained, seed-fixed U-Net exported as a model folder (forward.onnx, vjp.onnx, model.json), checked in under
/// tests/fixtures/tiny-unet so that the tests of the methods run on ONNX Runtime alone, without libtorch.
/// Training.Tests' <c>TinyModelFixtureTests</c> exports it again through TorchSharp and checks the files byte for byte.
/// </summary>
public static class TinyModelFixture
{
    /// <summary>The model folder's files.</summary>
    public static readonly IReadOnlyList<string> Files = ["forward.onnx", "vjp.onnx", "model.json"];

    /// <summary>The checked-in folder (read only: copy it with <see cref="CopyTo"/> where a test may write beside it).</summary>
    public static string Directory => Path.Combine(RepositoryFiles.Root, "tests", "fixtures", "tiny-unet");

    /// <summary>Copies the model folder to <paramref name="directory"/> (created) and returns it.</summary>
    /// <exception cref="FileNotFoundException">A fixture file is missing from the checkout.</exception>
    public static string CopyTo(string directory)
    {
        System.IO.Directory.CreateDirectory(directory);
        foreach (var file in Files)
        {
            var source = Path.Combine(Directory, file);
            if (!File.Exists(source))
            {
                throw new FileNotFoundException($"the tiny model fixture {source} is missing: it is checked in (git checkout tests/fixtures)", source);
            }
            File.Copy(source, Path.Combine(directory, file), overwrite: true);
        }
        return directory;
    }
}
