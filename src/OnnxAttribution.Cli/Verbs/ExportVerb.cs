using CommandLine;
using OnnxAttribution.Training;

namespace OnnxAttribution.Cli.Verbs;

[Verb("export", HelpText = "Export a training run's EMA weights to a model folder: forward.onnx, vjp.onnx (the gradient graph) and model.json. With --step: " +
    "the raw weights of a kept checkpoint, for TracIn (forward.onnx and model.json with the step and learning rate).")]
internal sealed class ExportVerb : IVerbOptions
{
    [Option("checkpoint", Required = true, HelpText = "The run folder written by 'train --out'.")]
    public string Checkpoint { get; set; } = "";

    [Option("out", Required = true, HelpText = "The model folder to write.")]
    public string Out { get; set; } = "";

    [Option("step", HelpText = "Export the raw (non-EMA) weights of the checkpoint of this step (kept by 'train --keep-checkpoints-every'), recording the step and its learning rate.")]
    public int? Step { get; set; }

    [Option("name", HelpText = "The model's name in model.json (default: the folder's name).")]
    public string? Name { get; set; }

    [Option("json", HelpText = "Print the model metadata as JSON on stdout.")]
    public bool Json { get; set; }

    /// <inheritdoc/>
    public void Validate()
    {
        if (Step is int step)
        {
            OptionChecks.AtLeast(step, 0, "--step");
        }
        OptionChecks.OutputDirectory(Out, "--out");
    }
}

internal static class ExportCommand
{
    public static int Run(ExportVerb o)
    {
        var name = o.Name ?? Path.GetFileName(Path.GetFullPath(o.Out).TrimEnd('/'));
        var exported = o.Step is int step ? ModelExport.ExportStep(o.Checkpoint, step, o.Out, name) : ModelExport.Export(o.Checkpoint, o.Out, name);
        if (o.Json)
        {
            Output.WriteJson(exported.Metadata);
        }
        else
        {
            long parameters = exported.Metadata.Parameters.Sum(p => p.Shape.Aggregate(1L, (a, b) => a * b));
            string what = exported.Metadata.Checkpoint is { } c ? $"raw weights of step {c.Step}, learning rate {c.LearningRate:G4}; forward.onnx, model.json" : "forward.onnx, vjp.onnx, model.json";
            Console.WriteLine($"exported {name}: {exported.Metadata.Parameters.Count} parameter tensors, {parameters:N0} parameters -> {exported.Directory} ({what})");
        }
        return CliApp.Ok;
    }
}
