using OnnxAttribution.Onnx.Proto;
using OnnxAttribution.Onnx;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Runtime.Models;

public static partial class ModelImport
{
    /// <summary>The file name a text model's caption encoder gets in the model folder.</summary>
    public const string TextEncoderFile = "text-encoder.onnx";

    /// <summary>
    /// For a text-conditioned import (<see cref="ModelImportOptions.TextEncoderPath"/>): the caption encoder, checked against the
    /// model's embedding input, and model.json's text condition; null for another model.
    /// </summary>
    /// <exception cref="SettingException">An option does not fit the model or the encoder (naming the option and what they have).</exception>
    /// <exception cref="ModelFileException">The encoder is not an ONNX model.</exception>
    private static (ModelProto Encoder, ConditionSpec Condition)? TextOf(ModelProto model, ModelImportOptions o)
    {
        if (o.TextEncoderPath is not { } path)
        {
            return o.Vocabulary is not null || o.ClassNames is not null
                ? throw new SettingException(o.Vocabulary is not null ? "Vocabulary" : "ClassNames", null, "goes with a caption encoder (--text-encoder)")
                : null;
        }
        if (o.ConditionInput is not { } embedding)
        {
            throw new SettingException("TextEncoderPath", path, "name the model's embedding input as well (--condition-input, e.g. encoder_hidden_states)");
        }
        if (o.Classes is not null || o.NullLabel is not null)
        {
            throw new SettingException(o.Classes is not null ? "Classes" : "NullLabel", (object?)o.Classes ?? o.NullLabel, "goes with a class-label input, not a caption encoder");
        }
        ModelProto encoder;
        try
        {
            encoder = OnnxModelFile.Load(path);
        }
        catch (Exception e) when (e is OnnxGraphException or FileNotFoundException)
        {
            throw new ModelFileException($"{path}: {e.Message}", e);
        }
        var initializers = encoder.Graph.Initializer.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var inputs = encoder.Graph.Input.Where(i => !initializers.Contains(i.Name)).ToList();
        var outputs = encoder.Graph.Output.ToList();
        if (inputs.Count != 1 || outputs.Count != 1)
        {
            throw new SettingException("TextEncoderPath", path, $"a caption encoder has one input (token ids) and one output (the embeddings); it has inputs " +
                $"{string.Join(", ", inputs.Select(i => i.Name))} and outputs {string.Join(", ", outputs.Select(v => v.Name))}");
        }
        var tokens = Dims(inputs[0]);
        var embedded = Dims(outputs[0]);
        var target = Dims(model.Graph.Input.Single(i => i.Name == embedding));
        if (inputs[0].Type?.TensorType?.ElemType != TensorData.Int64 || tokens is not [_, > 0 and var length] || embedded is not [_, _, > 0 and var width])
        {
            throw new SettingException("TextEncoderPath", path, $"its input '{inputs[0].Name}' must be int64 [batch, L] and its output '{outputs[0].Name}' " +
                $"float [batch, L, D] with L and D fixed; they are [{Show(tokens)}] and [{Show(embedded)}]");
        }
        if (target is not [_, var l, var d] || (l > 0 && l != length) || (d > 0 && d != width))
        {
            throw new SettingException("ConditionInput", embedding, $"it is [{Show(target)}]; the caption encoder gives [batch, {length}, {width}]");
        }
        if (OpsetAdapter.OpsetOf(model) != OpsetAdapter.OpsetOf(encoder))
        {
            throw new SettingException("TextEncoderPath", path,
                $"it is opset {OpsetAdapter.OpsetOf(encoder)} and the model opset {OpsetAdapter.OpsetOf(model)}; export both at one opset");
        }
        var words = o.Vocabulary ?? throw new SettingException("Vocabulary", null, "a text-conditioned model needs the words of its token ids 1, 2, … (--vocabulary)");
        var condition = new ConditionSpec
        {
            Kind = ConditionKind.Text,
            Input = ConditionSpec.DefaultPromptInput,
            NullLabel = 0,
            ClassNames = o.ClassNames?.ToArray() ?? [],
            Encoder = TextEncoderFile,
            EncoderInput = inputs[0].Name,
            EncoderOutput = outputs[0].Name,
            EmbeddingInput = embedding,
            Length = checked((int)length),
            Width = checked((int)width),
            Vocabulary = ["", .. words.Select(w => w.Trim().ToLowerInvariant())],
        };
        if (condition.CheckError() is { } error)
        {
            throw new SettingException("Vocabulary", $"{words.Count} words", error);
        }
        // The training rows' captions must be prompts of the model: every word of "a dark|light <class name>".
        foreach (var name in condition.ClassNames)
        {
            try
            {
                condition.EncodePrompt($"a dark {name}", "caption");
                condition.EncodePrompt($"a light {name}", "caption");
            }
            catch (UserInputException e)
            {
                throw new SettingException("ClassNames", name, $"the captions of its rows do not fit the model's prompts: {e.Message}");
            }
        }
        return (encoder, condition);
    }

    private static long[] Dims(ValueInfoProto value) =>
        value.Type?.TensorType?.Shape?.Dim.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? d.DimValue : -1L).ToArray() ?? [];

    private static string Show(long[] dims) => string.Join(", ", dims.Select(d => d < 0 ? "?" : d.ToString(System.Globalization.CultureInfo.InvariantCulture)));
}
