using CommandLine;
using OnnxAttribution.Onnx;
using OnnxAttribution.Onnx.Differentiation;

namespace OnnxAttribution.Cli.Verbs;

[Verb("differentiate", HelpText = "Emit the vector–Jacobian-product graph of an ONNX model: per-example parameter gradients and/or Kronecker factors of ⟨cotangent, output⟩.")]
internal sealed class DifferentiateVerb : IVerbOptions
{
    [Option("model", Required = true, HelpText = "The forward ONNX model, opset 7 to 26 (one float output or --output; axis 0 of the inputs is the batch).")]
    public string Model { get; set; } = "";

    [Option("out", Required = true, HelpText = "Where to write the gradient graph.")]
    public string Out { get; set; } = "";

    [Option("wrt-initializers", HelpText = "Differentiate with respect to every initializer that acts as a trainable parameter " +
        "(Conv/Gemm/MatMul weights and biases, normalisation scales, broadcast Add/Mul operands of the data path).")]
    public bool WrtInitializers { get; set; }

    [Option("parameters", Separator = ',', HelpText = "Differentiate with respect to these initializers only (comma-separated, each once).")]
    public IEnumerable<string> Parameters { get; set; } = [];

    [Option("wrt-inputs", Separator = ',', HelpText = "Also output the gradient of these float inputs (e.g. x_t).")]
    public IEnumerable<string> WrtInputs { get; set; } = [];

    [Option("output", HelpText = "The graph output to differentiate, for a model with several outputs (the others are left out of the gradient graph).")]
    public string? Output { get; set; }

    [Option("factors", HelpText = "Also output Kronecker factors a.<layer> [B,S,in·k·k] and g.<layer> [B,S,out].")]
    public bool Factors { get; set; }

    [Option("no-per-example", HelpText = "Do not output per-example gradients grad.<param>.")]
    public bool NoPerExample { get; set; }

    [Option("json", HelpText = "Print the inputs and outputs of the written graph as JSON.")]
    public bool Json { get; set; }

    /// <inheritdoc/>
    public void Validate()
    {
        OptionChecks.Given(Model, "--model");
        OptionChecks.OutputFile(Out, "--out");
    }
}

internal static class DifferentiateCommand
{
    public static int Run(DifferentiateVerb o)
    {
        var explicitParameters = o.Parameters.ToList();
        if (explicitParameters.Count == 0 && !o.WrtInitializers && !o.WrtInputs.Any())
        {
            throw new Primitives.UserInputException("say what to differentiate: --wrt-initializers, --parameters a,b or --wrt-inputs x");
        }
        var forward = OnnxModelFile.Load(o.Model);
        var options = new VjpOptions
        {
            Parameters = explicitParameters.Count > 0 ? explicitParameters : o.WrtInitializers ? null : [],
            PerExampleGradients = !o.NoPerExample,
            KroneckerFactors = o.Factors,
            InputGradients = o.WrtInputs.ToList(),
            Output = o.Output,
        };
        var vjp = VjpBuilder.Build(forward, options);
        OnnxModelFile.Save(vjp, o.Out);
        var summary = new
        {
            model = o.Model,
            output = o.Out,
            inputs = vjp.Graph.Input.Select(i => i.Name).Where(n => vjp.Graph.Initializer.All(t => t.Name != n)).ToList(),
            outputs = vjp.Graph.Output.Select(i => i.Name).ToList(),
            nodes = vjp.Graph.Node.Count,
            forwardNodes = forward.Graph.Node.Count,
        };
        if (o.Json)
        {
            Output.WriteJson(summary);
        }
        else
        {
            Console.WriteLine($"wrote {o.Out}: {summary.forwardNodes} forward nodes -> {summary.nodes} nodes; inputs {string.Join(", ", summary.inputs)}; " +
                $"{summary.outputs.Count} outputs ({string.Join(", ", summary.outputs.Take(6))}{(summary.outputs.Count > 6 ? ", ..." : "")})");
        }
        return CliApp.Ok;
    }
}
