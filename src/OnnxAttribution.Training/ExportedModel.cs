using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Training;

/// <summary>What <see cref="OnnxExporter.Export"/> wrote.</summary>
/// <param name="Directory">The model directory.</param>
/// <param name="ForwardPath">Path of <c>forward.onnx</c>.</param>
/// <param name="MetadataPath">Path of <c>model.json</c>.</param>
/// <param name="Forward">The forward graph as written (e.g. for building the gradient graph from it).</param>
/// <param name="Metadata">The metadata as written.</param>
public sealed record ExportedModel(string Directory, string ForwardPath, string MetadataPath, ModelProto Forward, ModelMetadata Metadata);
