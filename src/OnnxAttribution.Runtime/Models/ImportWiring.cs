using OnnxAttribution.Onnx.Proto;
using OnnxAttribution.Onnx;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Runtime.Models;

/// <summary>
/// Rewires a foreign ε-prediction graph, in place, to the engine's forward contract (<see cref="Runtime.OnnxDenoiser"/>):
/// the image input becomes <c>x_t</c>, the output <c>eps</c>, and a new int64 input <c>t</c> feeds the model's
/// timestep input through Cast, Add (offset) and Mul (scale) nodes placed first in the graph. A batch axis fixed in
/// the inputs and output is made symbolic (the engine batches freely; <see cref="ModelImport"/> then checks a batch of two runs).
/// </summary>
internal sealed record ImportWiring(string ImageInput, string TimestepInput, string TimestepType, string Output, int ImageSize, int Channels,
    bool BatchWasFixed, long FixedBatch)
{
    private const string ContractImage = Runtime.OnnxDenoiser.InputXt;
    private const string ContractTimestep = Runtime.OnnxDenoiser.InputT;
    private const string ContractOutput = Runtime.OnnxDenoiser.OutputEps;

    public static ImportWiring Wire(ModelProto model, ModelImportOptions o)
    {
        var graph = model.Graph;
        var initializers = graph.Initializer.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var inputs = graph.Input.Where(i => !initializers.Contains(i.Name)).ToList();
        var image = PickImage(inputs, o);
        var condition = PickCondition(inputs, image, o);
        var timestep = PickTimestep(inputs.Where(i => i != condition).ToList(), image, o);
        var output = PickOutput(graph, o);
        var (channels, size) = Geometry(image, o);
        int tType = timestep.Type?.TensorType?.ElemType ?? 0;
        string tTypeName = tType switch
        {
            TensorData.Int64 => "int64",
            (int)TensorProto.Types.DataType.Int32 => "int32",
            TensorData.Float => "float",
            TensorData.Double => "double",
            _ => throw new SettingException("TimestepInput", timestep.Name,
                $"its element type is {(TensorProto.Types.DataType)tType}; the engine feeds the timestep as int64, int32, float or double"),
        };
        var tDims = timestep.Type?.TensorType?.Shape?.Dim;
        if (tDims is not null && tDims.Count != 1)
        {
            throw new SettingException("TimestepInput", timestep.Name,
                $"it has rank {tDims.Count}; the engine gives each image of a batch its own step, so the timestep must be a vector [batch] (export it with a batch axis)");
        }
        bool integer = tType is TensorData.Int64 or (int)TensorProto.Types.DataType.Int32;
        if (integer && (o.TimestepScale != 1 || o.TimestepOffset != Math.Round(o.TimestepOffset)))
        {
            throw new SettingException(o.TimestepScale != 1 ? "TimestepScale" : "TimestepOffset", o.TimestepScale != 1 ? o.TimestepScale : o.TimestepOffset,
                $"the timestep input '{timestep.Name}' is {tTypeName}: it takes scale 1 and an integer offset only");
        }
        if (!double.IsFinite(o.TimestepScale) || o.TimestepScale == 0 || !double.IsFinite(o.TimestepOffset))
        {
            throw new SettingException(!double.IsFinite(o.TimestepOffset) ? "TimestepOffset" : "TimestepScale",
                !double.IsFinite(o.TimestepOffset) ? o.TimestepOffset : o.TimestepScale, "must be a finite number (the scale not 0)");
        }
        var names = AllNames(graph);
        foreach (var (contract, own) in new[] { (ContractImage, image.Name), (ContractTimestep, timestep.Name), (ContractOutput, output) })
        {
            if (contract != own && names.Contains(contract))
            {
                throw new ModelFileException($"{o.ModelPath}: the graph already has a value named '{contract}' that is not the one the engine feeds or reads; rename it before importing");
            }
        }
        string imageName = image.Name, timestepName = timestep.Name, outputName = output;
        Rename(graph, image.Name, ContractImage);
        Rename(graph, output, ContractOutput);
        FeedTimestep(graph, timestep, tType, o);
        var (fixedBatch, batch) = MakeBatchSymbolic(graph);
        FixImageSize(graph, channels, size);
        return new ImportWiring(imageName, timestepName, tTypeName, outputName, size, channels, fixedBatch, batch);
    }

    private static ValueInfoProto PickImage(List<ValueInfoProto> inputs, ModelImportOptions o)
    {
        if (o.ImageInput is { } named)
        {
            return inputs.FirstOrDefault(i => i.Name == named)
                ?? throw new SettingException("ImageInput", named, $"the model has no such input; its inputs: {string.Join(", ", inputs.Select(i => i.Name))}");
        }
        var candidates = inputs.Where(i => i.Type?.TensorType?.ElemType == TensorData.Float && i.Type.TensorType.Shape?.Dim.Count == 4).ToList();
        return candidates.Count == 1 ? candidates[0]
            : throw new SettingException("ImageInput", null,
                $"the model has {candidates.Count} float inputs of rank 4 (of inputs {string.Join(", ", inputs.Select(i => i.Name))}); name the image input");
    }

    /// <summary>The class-label input the options name (int64, a vector [batch]), or null when they name none.</summary>
    private static ValueInfoProto? PickCondition(List<ValueInfoProto> inputs, ValueInfoProto image, ModelImportOptions o)
    {
        if (o.ConditionInput is not { } named)
        {
            return null;
        }
        var input = inputs.FirstOrDefault(i => i.Name == named && i != image)
            ?? throw new SettingException("ConditionInput", named, $"the model has no such input besides the image; its inputs: {string.Join(", ", inputs.Select(i => i.Name))}");
        if (named is ContractImage or ContractTimestep)
        {
            throw new SettingException("ConditionInput", named, "the engine feeds an input of that name itself; rename the model's label input before importing");
        }
        if (o.TextEncoderPath is not null)
        {
            return input.Type?.TensorType?.ElemType == TensorData.Float && input.Type.TensorType.Shape?.Dim.Count == 3 ? input
                : throw new SettingException("ConditionInput", named,
                    $"it is {(TensorProto.Types.DataType)(input.Type?.TensorType?.ElemType ?? 0)} of rank {input.Type?.TensorType?.Shape?.Dim.Count}; " +
                    "a text-conditioned model's embedding input is float [batch, L, D] (the caption encoder's output)");
        }
        if (input.Type?.TensorType?.ElemType != TensorData.Int64 || input.Type.TensorType.Shape?.Dim.Count is not (null or 1))
        {
            throw new SettingException("ConditionInput", named,
                $"it is {(TensorProto.Types.DataType)(input.Type?.TensorType?.ElemType ?? 0)} of rank {input.Type?.TensorType?.Shape?.Dim.Count}; " +
                "a class-label input is int64 [batch] (export the labels as a LongTensor with a batch axis)");
        }
        return input;
    }

    private static ValueInfoProto PickTimestep(List<ValueInfoProto> inputs, ValueInfoProto image, ModelImportOptions o)
    {
        if (o.TimestepInput is { } named)
        {
            return inputs.FirstOrDefault(i => i.Name == named && i != image)
                ?? throw new SettingException("TimestepInput", named, $"the model has no such input besides the image; its inputs: {string.Join(", ", inputs.Select(i => i.Name))}");
        }
        var others = inputs.Where(i => i != image).ToList();
        return others.Count == 1 ? others[0]
            : throw new SettingException("TimestepInput", null, others.Count == 0
                ? "the model has no input besides the image: an ε-prediction model takes the timestep too"
                : $"the model has {others.Count} inputs besides the image ({string.Join(", ", others.Select(i => i.Name))}); name the timestep input "
                    + "(a class-label input, or with --text-encoder a text embedding input, is named with --condition-input)");
    }

    private static string PickOutput(GraphProto graph, ModelImportOptions o)
    {
        var outputs = graph.Output.Select(v => v.Name).ToList();
        if (o.Output is { } named)
        {
            return outputs.Contains(named) ? named
                : throw new SettingException("Output", named, $"the model has no such output; its outputs: {string.Join(", ", outputs)}");
        }
        return outputs.Count == 1 ? outputs[0]
            : throw new SettingException("Output", null, $"the model has {outputs.Count} outputs ({string.Join(", ", outputs)}); name the one that holds ε̂");
    }

    /// <summary>(C, H = W) from the image input's shape, or from the options where the shape does not fix them.</summary>
    private static (int Channels, int Size) Geometry(ValueInfoProto image, ModelImportOptions o)
    {
        var dims = image.Type.TensorType.Shape.Dim;
        long? Fixed(int axis) => dims[axis].ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? dims[axis].DimValue : null;
        long? c = Fixed(1), h = Fixed(2), w = Fixed(3);
        if (h is not null && w is not null && h != w)
        {
            throw new SettingException("ImageInput", image.Name, $"its images are {h}×{w}; the engine takes square images");
        }
        int channels = Resolve("Channels", o.Channels, c, image.Name);
        int size = Resolve("ImageSize", o.ImageSize, h ?? w, image.Name);
        return (channels, size);
    }

    private static int Resolve(string setting, int? given, long? fromShape, string input)
    {
        if (given is { } g && fromShape is { } s && g != s)
        {
            throw new SettingException(setting, g, $"the model's input '{input}' fixes it at {s}");
        }
        long value = given ?? fromShape ?? throw new SettingException(setting, null, $"the model's input '{input}' leaves it open; give it");
        return value is >= 1 and <= 4096 ? (int)value : throw new SettingException(setting, value, "must be between 1 and 4096");
    }

    private static HashSet<string> AllNames(GraphProto graph)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        names.UnionWith(graph.Input.Select(i => i.Name));
        names.UnionWith(graph.Initializer.Select(i => i.Name));
        names.UnionWith(graph.Node.SelectMany(n => n.Output));
        return names;
    }

    /// <summary>Renames a value everywhere: graph inputs and outputs, value infos, node inputs and outputs.</summary>
    private static void Rename(GraphProto graph, string from, string to)
    {
        if (from == to)
        {
            return;
        }
        foreach (var v in graph.Input.Concat(graph.Output).Concat(graph.ValueInfo).Where(v => v.Name == from))
        {
            v.Name = to;
        }
        foreach (var node in graph.Node)
        {
            for (int i = 0; i < node.Input.Count; i++)
            {
                if (node.Input[i] == from)
                {
                    node.Input[i] = to;
                }
            }
            for (int i = 0; i < node.Output.Count; i++)
            {
                if (node.Output[i] == from)
                {
                    node.Output[i] = to;
                }
            }
        }
    }

    /// <summary>Replaces the model's timestep input by nodes computing it from the engine's int64 <c>t</c>.</summary>
    private static void FeedTimestep(GraphProto graph, ValueInfoProto timestep, int tType, ModelImportOptions o)
    {
        bool asIs = tType == TensorData.Int64 && o.TimestepScale == 1 && o.TimestepOffset == 0;
        if (asIs)
        {
            Rename(graph, timestep.Name, ContractTimestep);
            return;
        }
        string own = timestep.Name;
        graph.Input.Remove(timestep);
        if (own == ContractTimestep)
        {
            // The model's own input is called t but is not the engine's t (another type, or scaled): it becomes an inner value.
            var names = AllNames(graph);
            own = Enumerable.Range(0, int.MaxValue).Select(i => i == 0 ? "t_model" : $"t_model_{i}").First(n => !names.Contains(n));
            Rename(graph, ContractTimestep, own);
        }
        var b = new GraphBuilder(graph);
        int before = graph.Node.Count;
        var t = b.Input(ContractTimestep, TensorData.Int64, -1);
        string value;
        if (tType is TensorData.Int64 or (int)TensorProto.Types.DataType.Int32)
        {
            value = o.TimestepOffset == 0 ? t : b.Node("Add", [t, b.ConstantInt64("t_offset", (long)o.TimestepOffset)]);
            value = tType == TensorData.Int64 ? b.Node("Identity", [value], own)
                : b.Node("Cast", [value], own, Attr.Int("to", (long)TensorProto.Types.DataType.Int32));
        }
        else
        {
            value = b.Node("Cast", [t], null, Attr.Int("to", TensorData.Float));
            if (o.TimestepOffset != 0)
            {
                value = b.Node("Add", [value, b.Scalar("t_offset", (float)o.TimestepOffset)]);
            }
            if (o.TimestepScale != 1)
            {
                value = b.Node("Mul", [value, b.Scalar("t_scale", (float)o.TimestepScale)]);
            }
            value = tType == TensorData.Double
                ? b.Node("Cast", [value], own, Attr.Int("to", TensorData.Double))
                : b.Node("Identity", [value], own);
        }
        // The new nodes read only t and constants: they go first, keeping the graph in topological order.
        var nodes = graph.Node.Skip(before).Concat(graph.Node.Take(before)).ToList();
        graph.Node.Clear();
        graph.Node.AddRange(nodes);
    }

    /// <summary>
    /// Fixes the channel and spatial axes of the image input and the ε̂ output where the export left them open (a model
    /// exported with dynamic height and width): the gradient graph needs static shapes for everything but the batch, and
    /// the exporter's shape arithmetic reduces to constants once the image size is known.
    /// </summary>
    private static void FixImageSize(GraphProto graph, int channels, int size)
    {
        foreach (var v in graph.Input.Concat(graph.Output).Where(v => v.Name is ContractImage or ContractOutput))
        {
            var dims = v.Type?.TensorType?.Shape?.Dim;
            if (dims is not { Count: 4 })
            {
                continue;
            }
            long[] want = [0, channels, size, size];
            for (int axis = 1; axis < 4; axis++)
            {
                if (dims[axis].ValueCase != TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue)
                {
                    dims[axis] = new TensorShapeProto.Types.Dimension { DimValue = want[axis] };
                }
            }
        }
    }

    /// <summary>Makes a fixed batch axis of the inputs and outputs symbolic; intermediate shapes are dropped (ORT infers them).</summary>
    private static (bool WasFixed, long Batch) MakeBatchSymbolic(GraphProto graph)
    {
        bool wasFixed = false;
        long batch = 0;
        var initializers = graph.Initializer.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var v in graph.Input.Where(i => !initializers.Contains(i.Name)).Concat(graph.Output))
        {
            var dims = v.Type?.TensorType?.Shape?.Dim;
            if (dims is { Count: > 0 } && dims[0].ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue)
            {
                wasFixed = true;
                batch = dims[0].DimValue;
                dims[0] = new TensorShapeProto.Types.Dimension { DimParam = "batch" };
            }
        }
        if (wasFixed)
        {
            graph.ValueInfo.Clear();
        }
        return (wasFixed, batch);
    }
}
