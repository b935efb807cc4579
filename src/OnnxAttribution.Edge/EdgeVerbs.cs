using CommandLine;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Edge;

/// <summary>The command line of <c>attribute</c>, mapped onto <see cref="EdgeAttributeOptions"/> by <see cref="ToOptions"/>.</summary>
[Verb("attribute", HelpText = "Attribute a PNG, or every *.png of a folder as one batch, to the store's training rows: " +
    "writes the grid (each query, then its top rows) and prints the rankings.")]
internal sealed class AttributeVerb
{
    [Option("model", Required = true, HelpText = "The model folder (model.json, forward.onnx, vjp.onnx).")]
    public string Model { get; set; } = "";

    [Option("store", Required = true, HelpText = "A finished method store of that model (any method).")]
    public string Store { get; set; } = "";

    [Option("image", Required = true, HelpText = "A PNG, or a folder: its *.png files are attributed as one batch.")]
    public string Image { get; set; } = "";

    [Option("label", HelpText = "For a class-conditional model (required there): the class label the images are attributed under.")]
    public long? Label { get; set; }

    [Option("prompt", HelpText = "For a text-conditioned model (required there): the prompt the images are attributed under, e.g. \"a dark sneaker\".")]
    public string? Prompt { get; set; }

    [Option("top", Default = 16, HelpText = "Training rows per query.")]
    public int Top { get; set; }

    [Option("out", Default = "attribution.png", HelpText = "The grid PNG: one row per query, the query first ('-' for none).")]
    public string Out { get; set; } = "";

    [Option("json", HelpText = "Print the rankings as JSON on stdout.")]
    public bool Json { get; set; }

    [Option("threads", Default = 0, HelpText = "ONNX Runtime threads (0: its own choice).")]
    public int Threads { get; set; }

    /// <summary>The options, range-checked.</summary>
    /// <exception cref="UserInputException">--top is below 1 or --threads below 0 (the message names the option and value).</exception>
    public EdgeAttributeOptions ToOptions()
    {
        if (Top < 1)
        {
            throw new UserInputException($"--top {Top}: expected a whole number ≥ 1");
        }
        if (Threads < 0)
        {
            throw new UserInputException($"--threads {Threads}: expected a whole number ≥ 0");
        }
        return new EdgeAttributeOptions(Model, Store, Image, Top, Out == "-" ? null : Out, Json, Threads, Label, Prompt);
    }
}

/// <summary>The command line of <c>verify</c>.</summary>
[Verb("verify", HelpText = "Check a store before it is trusted: opening it runs every open's checks, then every feature row is read " +
    "(finite?) and each store's dataset fingerprint is compared with the training images its source.json names. Exit code 3 when it finds a problem.")]
internal sealed class VerifyVerb
{
    [Option("model", Required = true, HelpText = "The model folder.")]
    public string Model { get; set; } = "";

    [Option("store", Required = true, HelpText = "The method store folder.")]
    public string Store { get; set; } = "";

    [Option("json", HelpText = "Print the result as JSON on stdout.")]
    public bool Json { get; set; }

    /// <summary>The options.</summary>
    public EdgeVerifyOptions ToOptions() => new(Model, Store, Json);
}
