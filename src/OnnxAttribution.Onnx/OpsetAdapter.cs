using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx;

/// <summary>
/// Converts a model of any opset from <see cref="MinimumOpset"/> to <see cref="MaximumOpset"/> to the range the gradient
/// rules are written for (<see cref="LowestTarget"/> to <see cref="HighestTarget"/>), op by op: attributes that became
/// inputs move to constant inputs, changed defaults are written out, replaced ops are rewritten (Upsample as Resize,
/// Scatter as ScatterElements). A model already in range is returned unchanged.
/// </summary>
/// <remarks>
/// Up from opsets 7–17 every change is applied in order of the opset that made it; down from 23 and later only ops whose
/// semantics did not change after opset 22 are accepted (later opsets widened their element types). What cannot be
/// converted is refused with the node and op named, never passed on with a different meaning.
/// </remarks>
public static class OpsetAdapter
{
    /// <summary>The oldest opset converted.</summary>
    public const int MinimumOpset = 7;

    /// <summary>The newest opset converted (the newest ONNX Runtime 1.31 loads).</summary>
    public const int MaximumOpset = 26;

    /// <summary>Models below this opset are converted up to it (Reduce* axes and Split's sizes are inputs from here).</summary>
    public const int LowestTarget = 18;

    /// <summary>Models above this opset are converted down to it.</summary>
    public const int HighestTarget = 22;

    /// <summary>The IR version a converted-up model gets at least (opset 18 needs IR 8).</summary>
    private const long MinimumIrVersion = 8;

    /// <summary>Ops introduced after opset 22, or changed in meaning since: a model using them cannot go down to 22.</summary>
    private static readonly HashSet<string> NewerThanTarget = new(StringComparer.Ordinal)
    {
        "Attention", "RMSNormalization", "RotaryEmbedding", "Swish", "TensorScatter", "BitCast", "CumProd",
    };

    /// <summary>Ops dropped from the standard, with no equivalent at the target here.</summary>
    private static readonly HashSet<string> Removed = new(StringComparer.Ordinal)
    {
        "ImageScaler", "Crop", "ScaledTanh", "GivenTensorFill",
    };

    private static readonly string[] ReduceOps =
    [
        "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
    ];

    /// <summary>The opset of the default domain (ai.onnx) a model imports, or 0 when it imports none.</summary>
    public static int OpsetOf(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return (int)(model.OpsetImport.FirstOrDefault(o => o.Domain.Length == 0 || o.Domain == "ai.onnx")?.Version ?? 0);
    }

    /// <summary>The opset a model of opset <paramref name="opset"/> is converted to.</summary>
    public static int TargetOf(int opset) => Math.Clamp(opset, LowestTarget, HighestTarget);

    /// <summary>The model at an opset the gradient rules are written for: the same object when already in range, else a converted copy.</summary>
    /// <exception cref="OnnxGraphException">The opset is outside <see cref="MinimumOpset"/>..<see cref="MaximumOpset"/>.</exception>
    /// <exception cref="UnsupportedOperatorException">A node cannot be converted (the message names it and its op).</exception>
    public static ModelProto Convert(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        int from = OpsetOf(model);
        string graphName = model.Graph?.Name ?? "";
        if (from < MinimumOpset || from > MaximumOpset)
        {
            throw new OnnxGraphException($"graph '{graphName}': opset {from} cannot be converted ({MinimumOpset} to {MaximumOpset} can)");
        }
        int to = TargetOf(from);
        if (to == from)
        {
            return model;
        }
        var converted = model.Clone();
        var graph = converted.Graph;
        var builder = new GraphBuilder(graph);
        var nodes = graph.Node.ToList();
        graph.Node.Clear();
        foreach (var node in nodes)
        {
            if (node.Domain.Length > 0 && node.Domain != "ai.onnx")
            {
                graph.Node.Add(node);
                continue;
            }
            if (node.Attribute.Any(a => a.G is not null || a.Graphs.Count > 0))
            {
                throw Refuse(node, from, to, "its subgraphs are not converted");
            }
            if (to > from)
            {
                Up(builder, node, from);
            }
            else
            {
                Down(node, from);
                graph.Node.Add(node);
            }
        }
        converted.OpsetImport.First(o => o.Domain.Length == 0 || o.Domain == "ai.onnx").Version = to;
        if (to > from && converted.IrVersion < MinimumIrVersion)
        {
            converted.IrVersion = MinimumIrVersion;
        }
        return converted;
    }

    private static UnsupportedOperatorException Refuse(NodeProto node, int from, int to, string why) =>
        new(node.OpType, node.Name.Length > 0 ? node.Name : node.Output.FirstOrDefault() ?? node.OpType,
            $"cannot be converted from opset {from} to {to}: {why}");

    private static void Down(NodeProto node, int from)
    {
        if (NewerThanTarget.Contains(node.OpType))
        {
            throw Refuse(node, from, HighestTarget, $"{node.OpType} does not exist before opset 23 (or changed its meaning since)");
        }
        if (node.OpType is "Cast" or "CastLike" && Attr.Find(node, "round_mode") is not null)
        {
            throw Refuse(node, from, HighestTarget, "the attribute 'round_mode' has no equivalent at opset 22");
        }
        if (node.OpType is "QuantizeLinear" or "DequantizeLinear" && node.Attribute.Any(a => a.Name is "precision" or "output_dtype" or "block_size"))
        {
            throw Refuse(node, from, HighestTarget, "its quantisation attributes have no equivalent at opset 22");
        }
    }

    /// <summary>Rewrites one node from opset <paramref name="from"/> to <see cref="LowestTarget"/> and adds it (or its replacement) to the graph.</summary>
    private static void Up(GraphBuilder b, NodeProto node, int from)
    {
        if (Removed.Contains(node.OpType))
        {
            throw Refuse(node, from, LowestTarget, $"{node.OpType} was removed from the standard");
        }
        switch (node.OpType)
        {
            case "Unsqueeze" or "Squeeze" or "ReduceSum" when from < 13:
                AttributeToInput(b, node, "axes", 1);
                break;
            case var op when from < 18 && ReduceOps.Contains(op):
                AttributeToInput(b, node, "axes", 1);
                break;
            case "Split":
                if (from < 13)
                {
                    AttributeToInput(b, node, "split", 1);
                }
                if (node.Input.Count < 2 || node.Input[1].Length == 0)
                {
                    // From 18 an equal split names its number of outputs.
                    node.Attribute.Add(Attr.Int("num_outputs", node.Output.Count));
                }
                break;
            case "TopK" when from < 10:
                node.Input.Add(b.ConstantInt64("k", Attr.GetInt(node, "k", 0)));
                Remove(node, "k");
                break;
            case "Slice" when from < 10:
                {
                    var starts = Attr.GetInts(node, "starts") ?? throw Refuse(node, from, LowestTarget, "'starts' is missing");
                    var ends = Attr.GetInts(node, "ends") ?? throw Refuse(node, from, LowestTarget, "'ends' is missing");
                    node.Input.Add(b.ConstantInt64("starts", starts));
                    node.Input.Add(b.ConstantInt64("ends", ends));
                    if (Attr.GetInts(node, "axes") is { } axes)
                    {
                        node.Input.Add(b.ConstantInt64("axes", axes));
                    }
                    Remove(node, "starts", "ends", "axes");
                    break;
                }
            case "Pad" when from < 11:
                {
                    var pads = Attr.GetInts(node, "pads") ?? throw Refuse(node, from, LowestTarget, "'pads' is missing");
                    node.Input.Add(b.ConstantInt64("pads", pads));
                    float value = Attr.GetFloat(node, "value", 0f);
                    if (value != 0f)
                    {
                        node.Input.Add(b.Scalar("pad_value", value));
                    }
                    Remove(node, "pads", "value");
                    break;
                }
            case "Clip" when from < 11:
                {
                    var min = Attr.Find(node, "min");
                    var max = Attr.Find(node, "max");
                    node.Input.Add(min is null ? "" : b.Scalar("clip_min", min.F));
                    if (max is not null)
                    {
                        node.Input.Add(b.Scalar("clip_max", max.F));
                    }
                    Remove(node, "min", "max");
                    break;
                }
            case "Upsample":
                {
                    if (from >= 10)
                    {
                        throw Refuse(node, from, LowestTarget, "Upsample is deprecated from opset 10");
                    }
                    var scaleValues = from < 9 ? Attr.Find(node, "scales")?.Floats.ToArray() ?? throw Refuse(node, from, LowestTarget, "'scales' is missing") : null;
                    string scales = scaleValues is null ? node.Input[1] : b.Constant("scales", scaleValues, scaleValues.Length);
                    string mode = Attr.GetString(node, "mode", "nearest");
                    var resize = new NodeProto { OpType = "Resize", Name = node.Name, Domain = node.Domain };
                    resize.Input.AddRange([node.Input[0], "", scales]);
                    resize.Output.AddRange(node.Output);
                    // Upsample maps output pixel o to input pixel o / scale, rounded down for nearest.
                    resize.Attribute.Add(Attr.String("mode", mode == "bilinear" ? "linear" : mode));
                    resize.Attribute.Add(Attr.String("coordinate_transformation_mode", "asymmetric"));
                    resize.Attribute.Add(Attr.String("nearest_mode", "floor"));
                    b.Graph.Node.Add(resize);
                    return;
                }
            case "Resize" when from < 11:
                {
                    // Resize-10 had inputs (X, scales) and Upsample's mapping (asymmetric, nearest rounded down).
                    node.Input.Insert(1, "");
                    node.Attribute.Add(Attr.String("coordinate_transformation_mode", "asymmetric"));
                    if (Attr.GetString(node, "mode", "nearest") == "nearest")
                    {
                        node.Attribute.Add(Attr.String("nearest_mode", "floor"));
                    }
                    break;
                }
            case "Resize" when from < 13 && Attr.GetString(node, "coordinate_transformation_mode", "half_pixel") == "tf_half_pixel_for_nn":
                throw Refuse(node, from, LowestTarget, "coordinate_transformation_mode 'tf_half_pixel_for_nn' was removed at opset 13");
            case "Scatter":
                node.OpType = "ScatterElements";
                break;
            case "BatchNormalization":
                if (from < 9)
                {
                    if (Attr.GetInt(node, "spatial", 1) == 0)
                    {
                        throw Refuse(node, from, LowestTarget, "spatial 0 (statistics per element, not per channel) has no later equivalent");
                    }
                    Remove(node, "spatial");
                }
                if (from < 14 && node.Output.Skip(1).Any(o => o.Length > 0))
                {
                    throw Refuse(node, from, LowestTarget, "the running-statistics outputs of training mode are not converted");
                }
                break;
            case "Dropout" when from < 12:
                {
                    if (node.Output.Skip(1).Any(o => o.Length > 0))
                    {
                        throw Refuse(node, from, LowestTarget, "its mask output is not converted (use the inference form, one output)");
                    }
                    // Inference: the ratio does not matter, but keep it for readers.
                    var ratio = Attr.Find(node, "ratio");
                    if (ratio is not null)
                    {
                        node.Input.Add(b.Scalar("ratio", ratio.F));
                    }
                    Remove(node, "ratio", "is_test");
                    break;
                }
            case "Softmax" or "LogSoftmax" or "Hardmax" when from < 13:
                {
                    // Before 13 these flattened the input to 2-D at `axis` (default 1); from 13 they act along one axis (default -1).
                    long axis = Attr.GetInt(node, "axis", 1);
                    if (axis == -1)
                    {
                        Remove(node, "axis");
                        node.Attribute.Add(Attr.Int("axis", -1));
                        break;
                    }
                    string x = node.Input[0];
                    string flat = b.Node("Flatten", [x], null, Attr.Int("axis", axis));
                    string inner = b.Node(node.OpType, [flat], null, Attr.Int("axis", 1));
                    b.Node("Reshape", [inner, b.Node("Shape", [x])], node.Output[0]);
                    return;
                }
            case "RoiAlign" when from < 16 && Attr.Find(node, "coordinate_transformation_mode") is null:
                node.Attribute.Add(Attr.String("coordinate_transformation_mode", "output_half_pixel"));
                break;
        }
        b.Graph.Node.Add(node);
    }

    /// <summary>Moves an ints attribute to input <paramref name="index"/> (omitted inputs before it written as empty names).</summary>
    private static void AttributeToInput(GraphBuilder b, NodeProto node, string name, int index)
    {
        var values = Attr.GetInts(node, name);
        Remove(node, name);
        if (values is null)
        {
            return;
        }
        while (node.Input.Count < index)
        {
            node.Input.Add("");
        }
        node.Input.Insert(index, b.ConstantInt64(name, values));
    }

    private static void Remove(NodeProto node, params string[] names)
    {
        for (int i = node.Attribute.Count - 1; i >= 0; i--)
        {
            if (names.Contains(node.Attribute[i].Name))
            {
                node.Attribute.RemoveAt(i);
            }
        }
    }
}
