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

    /// <summary>Writes the model to a temporary file then moves it into place, so a killed write leaves no half file.</summary>
    public static void Save(ModelProto model, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }
        var tmp = path + ".tmp";
        using (var stream = File.Create(tmp))
        {
            model.WriteTo(stream);
        }
        File.Move(tmp, path, overwrite: true);
    }
}
