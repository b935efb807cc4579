using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;

namespace OnnxAttribution.Runtime;

/// <summary>
/// A model directory: <c>model.json</c> (<see cref="ModelMetadata"/>), the forward graph and the gradient graph.
/// </summary>
public sealed class ModelDirectory
{
    private ModelDirectory(string path, ModelMetadata metadata)
    {
        Path = path;
        Metadata = metadata;
        ForwardPath = System.IO.Path.Combine(path, metadata.Forward);
        VjpPath = System.IO.Path.Combine(path, metadata.Vjp);
    }

    /// <summary>The directory's full path.</summary>
    public string Path { get; }

    /// <summary>The directory's <c>model.json</c>.</summary>
    public ModelMetadata Metadata { get; }

    /// <summary>The forward graph (<c>x_t</c>, <c>t</c> → <c>eps</c>); may not exist, see <see cref="RequireForward"/>.</summary>
    public string ForwardPath { get; }

    /// <summary>The gradient graph; may not exist, see <see cref="RequireVjp"/>.</summary>
    public string VjpPath { get; }

    /// <summary>Opens a model directory and reads its <c>model.json</c>.</summary>
    /// <exception cref="ModelFileException">The directory or its model.json is missing or invalid, or the prediction kind is not epsilon.</exception>
    public static ModelDirectory Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!Directory.Exists(path))
        {
            throw new ModelFileException($"model directory not found: {path}");
        }
        var full = System.IO.Path.GetFullPath(path);
        var meta = ModelMetadata.Load(full);
        if (!string.Equals(meta.Prediction, "epsilon", StringComparison.Ordinal))
        {
            throw new ModelFileException($"{System.IO.Path.Combine(full, ModelMetadata.FileName)}: field 'prediction' is '{meta.Prediction}'; only 'epsilon' is supported");
        }
        return new ModelDirectory(full, meta);
    }

    /// <summary>The model's noise schedule.</summary>
    public NoiseSchedule CreateSchedule() => new(Metadata.Schedule);

    /// <summary>The forward graph's path, checked to exist.</summary>
    /// <exception cref="ModelFileException">It does not.</exception>
    public string RequireForward() => Require(ForwardPath, "forward");

    /// <summary>The gradient graph's path, checked to exist.</summary>
    /// <exception cref="ModelFileException">It does not.</exception>
    public string RequireVjp() => Require(VjpPath, "vjp");

    /// <summary>The forward graph as the engine runs it: for a text model composed with its caption encoder (<see cref="PromptGraph"/>).</summary>
    /// <exception cref="ModelFileException">A file is missing or the graphs do not fit.</exception>
    public Onnx.Proto.ModelProto LoadForward() => PromptGraph.LoadForward(RequireForward(), Metadata.Condition);

    /// <summary>Opens the forward graph as a denoiser, checked against this directory's geometry.</summary>
    public OnnxDenoiser OpenDenoiser(SessionSettings? settings = null) =>
        new(RequireForward(), Metadata.Channels, Metadata.ImageSize, settings, Metadata.Condition);

    private string Require(string file, string field) =>
        File.Exists(file) ? file
            : throw new ModelFileException($"{file} not found (model.json field '{field}' names '{System.IO.Path.GetFileName(file)}' in {Path})");
}
