using System.Globalization;
using CommandLine;
using OnnxAttribution.Runtime.Models;

namespace OnnxAttribution.Cli.Verbs;

[Verb("import", HelpText = "Make a model folder from a diffusion model not trained here: an ε-prediction ONNX model "
    + "(opset 7 to 26, as PyTorch exports it) with an image input [batch, C, H, W] and a timestep input [batch]. "
    + "Writes forward.onnx wired to the engine's inputs, vjp.onnx and model.json, after running the model once in ONNX Runtime; "
    + "then generate, featurize, attribute and serve take the folder as any other.")]
internal sealed class ImportVerb : IVerbOptions
{
    [Option("onnx", Required = true, HelpText = "The ONNX model to import.")]
    public string Onnx { get; set; } = "";

    [Option("out", Required = true, HelpText = "The model folder to write (new or empty).")]
    public string Out { get; set; } = "";

    [Option("schedule", Default = ScheduleKind.Linear, HelpText = "The noise schedule the model was trained with: linear or cosine.")]
    public ScheduleKind Schedule { get; set; }

    [Option("timesteps", Default = 1000, HelpText = "T, the schedule's number of steps.")]
    public int Timesteps { get; set; }

    [Option("beta-start", Default = 1e-4, HelpText = "β₁ of a linear schedule.")]
    public double BetaStart { get; set; }

    [Option("beta-end", Default = 0.02, HelpText = "β_T of a linear schedule.")]
    public double BetaEnd { get; set; }

    [Option("image-input", HelpText = "The image input's name (default: the one float input of rank 4).")]
    public string? ImageInput { get; set; }

    [Option("timestep-input", HelpText = "The timestep input's name (default: the other input).")]
    public string? TimestepInput { get; set; }

    [Option("output", HelpText = "The output holding ε̂ (default: the only output).")]
    public string? Output { get; set; }

    [Option("image-size", HelpText = "Image side, when the model's input leaves it open.")]
    public int? ImageSize { get; set; }

    [Option("channels", HelpText = "Image channels, when the model's input leaves them open.")]
    public int? Channels { get; set; }

    [Option("timestep-scale", Default = 1.0, HelpText = "The model reads scale·(t + offset) for the 0-based step t: "
        + "1 for PyTorch DDPM code and diffusers, 0.001 for a model that takes t/T with T = 1000.")]
    public double TimestepScale { get; set; }

    [Option("timestep-offset", Default = 0.0, HelpText = "See --timestep-scale: 1 for a model that counts steps from 1.")]
    public double TimestepOffset { get; set; }

    [Option("parameters", Separator = ',', HelpText = "The initializers to attribute through, as comma-separated name patterns "
        + "(* any characters, ? one), e.g. 'blocks.*,final_*'. Default: chosen from the graph (Conv/Gemm/MatMul weights and biases, "
        + "embedding tables, norm scales and shifts, and tensors added to or multiplying the data); the choice is recorded in model.json.")]
    public IEnumerable<string> Parameters { get; set; } = [];

    [Option("exclude-parameters", Separator = ',', HelpText = "Name patterns of initializers to leave out of the parameters: buffers that "
        + "PyTorch exports like weights, e.g. a fixed position embedding ('pos_embed').")]
    public IEnumerable<string> ExcludeParameters { get; set; } = [];

    [Option("name", HelpText = "The model's name in model.json (default: the ONNX file's name).")]
    public string? Name { get; set; }

    [Option("condition-input", HelpText = "A class-conditional model's label input (int64 [batch], e.g. diffusers' class_labels, or y): " +
        "every training row and query then carries its class label (docs/guides/conditional.md); needs --classes. With --text-encoder: a " +
        "text-conditioned model's embedding input (float [batch, L, D], e.g. encoder_hidden_states; docs/guides/text.md).")]
    public string? ConditionInput { get; set; }

    [Option("text-encoder", HelpText = "A text-conditioned model's caption encoder: an ONNX file from token ids int64 [batch, L] to " +
        "[batch, L, D], exported at the model's opset; copied into the folder as text-encoder.onnx. Needs --condition-input and --vocabulary.")]
    public string? TextEncoder { get; set; }

    [Option("vocabulary", HelpText = "With --text-encoder: a text file of the words of token ids 1, 2, … one per line (0 is the padding).")]
    public string? Vocabulary { get; set; }

    [Option("class-names", HelpText = "With --text-encoder: a text file of the class names, one per line (label order), whose captions " +
        "(\"a dark sneaker\") the training rows are featurized under.")]
    public string? ClassNames { get; set; }

    [Option("classes", HelpText = "With --condition-input: the number of classes (labels 0 … classes − 1).")]
    public int? Classes { get; set; }

    [Option("null-label", HelpText = "With --condition-input: the label the model reads as 'no class' (classifier-free guidance), often the number of classes.")]
    public long? NullLabel { get; set; }

    [Option("json", HelpText = "Print model.json on stdout.")]
    public bool Json { get; set; }

    /// <inheritdoc/>
    public void Validate()
    {
        OptionChecks.Given(Onnx, "--onnx");
        OptionChecks.InRange(Timesteps, 1, 100_000, "--timesteps");
        OptionChecks.OutputDirectory(Out, "--out");
    }
}

internal static class ImportCommand
{
    /// <summary>The non-empty lines of a text file.</summary>
    /// <exception cref="Primitives.UserInputException">It is missing or has no line.</exception>
    private static List<string> Lines(string path, string option)
    {
        var lines = File.Exists(path) ? File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0).ToList()
            : throw new Primitives.UserInputException($"{option} {path}: file not found");
        return lines.Count > 0 ? lines : throw new Primitives.UserInputException($"{option} {path}: the file has no lines");
    }

    public static int Run(ImportVerb o)
    {
        var meta = ModelImport.Import(new ModelImportOptions
        {
            ModelPath = o.Onnx,
            OutDirectory = o.Out,
            Schedule = new ScheduleSettings(o.Schedule, o.Timesteps, o.BetaStart, o.BetaEnd),
            ImageInput = o.ImageInput,
            TimestepInput = o.TimestepInput,
            Output = o.Output,
            ImageSize = o.ImageSize,
            Channels = o.Channels,
            TimestepScale = o.TimestepScale,
            TimestepOffset = o.TimestepOffset,
            Name = o.Name,
            Parameters = o.Parameters.Any() ? o.Parameters.ToList() : null,
            ExcludeParameters = o.ExcludeParameters.Any() ? o.ExcludeParameters.ToList() : null,
            ConditionInput = o.ConditionInput,
            Classes = o.Classes,
            NullLabel = o.NullLabel,
            TextEncoderPath = o.TextEncoder,
            Vocabulary = o.Vocabulary is null ? null : Lines(o.Vocabulary, "--vocabulary"),
            ClassNames = o.ClassNames is null ? null : Lines(o.ClassNames, "--class-names"),
        });
        if (o.Json)
        {
            Output.WriteJson(meta);
            return CliApp.Ok;
        }
        var i = meta.Import!;
        long parameters = meta.Parameters.Sum(p => p.Shape.Aggregate(1L, (a, b) => a * b));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"imported {meta.Name} (opset {i.Opset}): {meta.Channels}×{meta.ImageSize}×{meta.ImageSize} images, x_t ← '{i.ImageInput}', "
            + $"t ← '{i.TimestepInput}' ({i.TimestepType}, {i.TimestepScale:G6}·(t + {i.TimestepOffset:G6})), eps ← '{i.Output}'; "
            + $"{meta.Parameters.Count} parameter tensors, {parameters:N0} parameters; Kronecker factors: {(i.KroneckerFactors ? "yes" : "no (dense projection only)")} -> {o.Out}"));
        return CliApp.Ok;
    }
}
