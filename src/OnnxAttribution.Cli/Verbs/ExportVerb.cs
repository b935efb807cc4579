using CommandLine;
using OnnxAttribution.Training;

namespace OnnxAttribution.Cli.Verbs;

[Verb("export", HelpText = "Export a training run's EMA weights to a model folder: forward.onnx, vjp.onnx (the gradient graph) and model.json.")]
internal sealed class ExportVerb
{
    [Option("checkpoint", Required = true, HelpText = "The run folder written by 'train --out'.")]
    public string Checkpoint { get; set; } = "";

    [Option("out", Required = true, HelpText = "The model folder to write.")]
    public string Out { get; set; } = "";

    [Option("name", HelpText = "The model's name in model.json (default: the folder's name).")]
    public string? Name { get; set; }

    [Option("json", HelpText = "Print the model metadata as JSON on stdout.")]
    public bool Json { get; set; }
}

internal static class ExportCommand
{
    public static int Run(ExportVerb o)
    {
        var name = o.Name ?? Path.GetFileName(Path.GetFullPath(o.Out).TrimEnd('/'));
        var exported = ModelExport.Export(o.Checkpoint, o.Out, name);
        if (o.Json)
        {
            Output.WriteJson(exported.Metadata);
        }
        else
        {
            long parameters = exported.Metadata.Parameters.Sum(p => p.Shape.Aggregate(1L, (a, b) => a * b));
            Console.WriteLine($"exported {name}: {exported.Metadata.Parameters.Count} parameter tensors, {parameters:N0} parameters -> {exported.Directory} (forward.onnx, vjp.onnx, model.json)");
        }
        return CliApp.Ok;
    }
}
