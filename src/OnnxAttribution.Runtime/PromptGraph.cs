using OnnxAttribution.Onnx.Proto;
using OnnxAttribution.Onnx;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;

namespace OnnxAttribution.Runtime;

/// <summary>
/// Puts a text model's caption encoder in front of its forward graph, so that the graph the engine runs takes one int64 per
/// image, the packed prompt (<see cref="ConditionSpec.EncodePrompt"/>), like a label model: the prompt is unpacked into L
/// token ids (token j = ⌊prompt / Vʲ⌋ mod V: <c>Div</c>, <c>Mod</c>, <c>Unsqueeze</c>, <c>Concat</c>), the encoder's nodes
/// (names prefixed <c>prompt_encoder/</c>) map them to float [B, L, D], and that value replaces the forward graph's embedding
/// input. The encoder's weights are constants of the composed graph, not parameters: gradients are taken with respect to
/// the forward graph's own parameters only.
/// </summary>
public static class PromptGraph
{
    /// <summary>The prefix of the encoder's node, value and initializer names in the composed graph.</summary>
    public const string Prefix = "prompt_encoder/";

    /// <summary>The forward graph of a model folder as the engine runs it: composed with its caption encoder for a text
    /// model, as stored otherwise.</summary>
    /// <exception cref="ModelFileException">A file is missing or the two graphs do not fit.</exception>
    public static ModelProto LoadForward(string forwardPath, ConditionSpec? condition)
    {
        var forward = OnnxModelFile.Load(forwardPath);
        if (condition is not { Kind: ConditionKind.Text })
        {
            return forward;
        }
        var encoderPath = EncoderPath(forwardPath, condition);
        return Compose(forward, OnnxModelFile.Load(encoderPath), condition, $"{forwardPath} with {encoderPath}");
    }

    /// <summary>The caption encoder's file, beside the forward graph.</summary>
    /// <exception cref="ModelFileException">It is not there.</exception>
    public static string EncoderPath(string forwardPath, ConditionSpec condition)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var path = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(forwardPath))!, condition.Encoder!);
        return File.Exists(path) ? path
            : throw new ModelFileException($"{path} not found (model.json field 'condition.encoder' names the caption encoder of a text model)");
    }

    /// <summary>The composed graph (both inputs are left unchanged).</summary>
    /// <param name="forward">The forward graph, with the float [B, L, D] input <see cref="ConditionSpec.EmbeddingInput"/>.</param>
    /// <param name="encoder">The caption encoder: int64 [B, L] <see cref="ConditionSpec.EncoderInput"/> → float [B, L, D] <see cref="ConditionSpec.EncoderOutput"/>.</param>
    /// <param name="condition">The model's text condition.</param>
    /// <param name="source">The files, for messages.</param>
    /// <exception cref="ModelFileException">An input or output named in the condition is missing, or the opsets differ.</exception>
    public static ModelProto Compose(ModelProto forward, ModelProto encoder, ConditionSpec condition, string source)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(condition);
        int opset = Opset(forward), encoderOpset = Opset(encoder);
        if (opset != encoderOpset)
        {
            throw new ModelFileException($"{source}: the forward graph is opset {opset} and the caption encoder opset {encoderOpset}; export both at one opset");
        }
        var model = forward.Clone();
        var graph = model.Graph;
        var embedding = graph.Input.FirstOrDefault(i => i.Name == condition.EmbeddingInput)
            ?? throw new ModelFileException($"{source}: the forward graph has no input '{condition.EmbeddingInput}' (model.json 'condition.embeddingInput'); " +
                $"its inputs: {string.Join(", ", graph.Input.Select(i => i.Name))}");
        if (!encoder.Graph.Input.Any(i => i.Name == condition.EncoderInput) || !encoder.Graph.Output.Any(o => o.Name == condition.EncoderOutput))
        {
            throw new ModelFileException($"{source}: the caption encoder needs input '{condition.EncoderInput}' and output '{condition.EncoderOutput}' " +
                $"(model.json 'condition.encoderInput', 'condition.encoderOutput'); it has {string.Join(", ", encoder.Graph.Input.Select(i => i.Name))} → " +
                string.Join(", ", encoder.Graph.Output.Select(o => o.Name)));
        }
        int at = graph.Input.IndexOf(embedding);
        graph.Input.RemoveAt(at);
        graph.Input.Insert(at, GraphBuilder.ValueInfo(condition.Input, TensorData.Int64, [-1]));

        var front = new List<NodeProto>();
        string tokens = Unpack(graph, front, condition);
        string Rename(string name) => name.Length == 0 ? name
            : name == condition.EncoderInput ? tokens
            : name == condition.EncoderOutput ? condition.EmbeddingInput!
            : Prefix + name;
        foreach (var init in encoder.Graph.Initializer)
        {
            var copy = init.Clone();
            copy.Name = Rename(copy.Name);
            graph.Initializer.Add(copy);
        }
        foreach (var node in encoder.Graph.Node)
        {
            var copy = node.Clone();
            copy.Name = Prefix + copy.Name;
            for (int i = 0; i < copy.Input.Count; i++)
            {
                copy.Input[i] = Rename(copy.Input[i]);
            }
            for (int i = 0; i < copy.Output.Count; i++)
            {
                copy.Output[i] = Rename(copy.Output[i]);
            }
            front.Add(copy);
        }
        var rest = graph.Node.ToList();
        graph.Node.Clear();
        graph.Node.Add(front);
        graph.Node.Add(rest);
        return model;
    }

    /// <summary>Adds the nodes that turn the packed prompt into token ids [B, L]; returns the tokens' name.</summary>
    private static string Unpack(GraphProto graph, List<NodeProto> nodes, ConditionSpec condition)
    {
        var divisors = PromptCodec.Divisors(condition);
        string Constant(string name, long value)
        {
            graph.Initializer.Add(TensorData.FromInt64s(Prefix + name, [value]));
            return Prefix + name;
        }
        string Node(string op, string name, params string[] inputs)
        {
            var node = new NodeProto { OpType = op, Name = Prefix + name };
            node.Input.Add(inputs);
            node.Output.Add(Prefix + name);
            nodes.Add(node);
            return Prefix + name;
        }
        string radix = Constant("radix", condition.Vocabulary!.Count);
        string axis = Prefix + "axis_1";
        graph.Initializer.Add(TensorData.FromInt64s(axis, [1], 1));
        var digits = new string[divisors.Length];
        for (int j = 0; j < digits.Length; j++)
        {
            string shifted = j == 0 ? condition.Input : Node("Div", $"shifted_{j}", condition.Input, Constant($"divisor_{j}", divisors[j]));
            digits[j] = Node("Unsqueeze", $"token_{j}", Node("Mod", $"digit_{j}", shifted, radix), axis);
        }
        string tokens = Node("Concat", "tokens", digits);
        nodes[^1].Attribute.Add(Attr.Int("axis", 1));
        return tokens;
    }

    private static int Opset(ModelProto model) =>
        (int)(model.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx")?.Version ?? 0);
}
