using Google.Protobuf;
using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx;

/// <summary>Reads and writes <c>.onnx</c> files.</summary>
public static class OnnxModelFile
{
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="OnnxGraphException">The file is not a valid ONNX model.</exception>
    public static ModelProto Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"ONNX model not found: {path}", path);
        }
        try
        {
            using var stream = File.OpenRead(path);
            var model = ModelProto.Parser.ParseFrom(stream);
            if (model.Graph is null)
            {
                throw new OnnxGraphException($"{path}: the model has no graph (field 7 'graph' is missing)");
            }
            return model;
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new OnnxGraphException($"{path}: not a valid ONNX model ({e.Message})", e);
        }
    }

    /// <summary>Writes the model to a temporary file then moves it into place, so a killed write leaves no half file and a
    /// failed one (a full disk) leaves none at all.</summary>
    /// <exception cref="IOException"><paramref name="path"/> is a directory, or the file cannot be written.</exception>
    public static void Save(ModelProto model, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }
        if (Directory.Exists(path))
        {
            throw new IOException($"{path}: is a directory; cannot write the model there");
        }
        var tmp = path + ".tmp";
        try
        {
            using (var stream = File.Create(tmp))
            {
                model.WriteTo(stream);
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            // No partial file is left (a full disk, a folder that cannot be written).
            File.Delete(tmp);
            throw;
        }
    }
}
