namespace OnnxAttribution.Runtime.Models;

/// <summary>Where an imported model came from and how its graph was wired to the engine's contract (<see cref="ModelImport"/>).</summary>
/// <param name="Source">The ONNX file imported, as given.</param>
/// <param name="SourceSha256">Its SHA-256 (lower-case hex).</param>
/// <param name="ImageInput">The model's image input, now <c>x_t</c>.</param>
/// <param name="TimestepInput">The model's timestep input, now fed from <c>t</c>.</param>
/// <param name="TimestepType">Its element type as ONNX names it (int64, int32, float, double).</param>
/// <param name="TimestepScale">The model reads <c>TimestepScale · (t + TimestepOffset)</c>.</param>
/// <param name="TimestepOffset">See <paramref name="TimestepScale"/>.</param>
/// <param name="Output">The model's output, now <c>eps</c>.</param>
/// <param name="Opset">The model's default-domain opset.</param>
/// <param name="KroneckerFactors">Whether vjp.onnx has Kronecker factors (K-FAC and the factored projector need them).</param>
/// <param name="ParameterPatterns">The <c>--parameters</c> patterns that chose the parameters; null for the default choice from the graph.</param>
/// <param name="ExcludedParameterPatterns">The <c>--exclude-parameters</c> patterns; null when none were given.</param>
public sealed record ImportInfo(string Source, string SourceSha256, string ImageInput, string TimestepInput, string TimestepType,
    double TimestepScale, double TimestepOffset, string Output, int Opset, bool KroneckerFactors,
    IReadOnlyList<string>? ParameterPatterns = null, IReadOnlyList<string>? ExcludedParameterPatterns = null);
