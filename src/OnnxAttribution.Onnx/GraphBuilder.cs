using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx;

/// <summary>
/// Builds an ONNX graph node by node. Names given by the caller are kept (so Netron shows readable names);
/// <see cref="Fresh"/> makes unique names for intermediate values.
/// </summary>
/// <remarks>A dimension of -1 in <see cref="Input"/> or <see cref="Output"/> is written as the symbolic dimension <c>batch</c>.</remarks>
public sealed class GraphBuilder
{
    /// <summary>The opset every graph of this project is written for (ReduceMean takes axes as an input from 18).</summary>
    public const int DefaultOpset = 18;

    /// <summary>IR version 10: loads in ONNX Runtime 1.17 and later.</summary>
    public const long DefaultIrVersion = 10;

    private readonly GraphProto _graph;
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private int _counter;

    /// <summary>Starts an empty graph named <paramref name="name"/>.</summary>
    public GraphBuilder(string name)
    {
        _graph = new GraphProto { Name = name };
    }

    /// <summary>Continues an existing graph (its nodes, initializers, inputs and outputs are kept).</summary>
    public GraphBuilder(GraphProto existing)
    {
        ArgumentNullException.ThrowIfNull(existing);
        _graph = existing;
        foreach (var n in existing.Node)
        {
            foreach (var o in n.Output)
            {
                _names.Add(o);
            }
            if (n.Name.Length > 0)
            {
                _names.Add(n.Name);
            }
        }
        foreach (var i in existing.Initializer)
        {
            _names.Add(i.Name);
        }
        foreach (var i in existing.Input)
        {
            _names.Add(i.Name);
        }
    }

    /// <summary>The graph being built.</summary>
    public GraphProto Graph => _graph;

    /// <summary>A name not used yet in this graph, starting with <paramref name="prefix"/>.</summary>
    public string Fresh(string prefix)
    {
        string name = prefix;
        while (!_names.Add(name))
        {
            name = $"{prefix}_{++_counter}";
        }
        return name;
    }

    /// <summary>Declares a graph input; returns its name.</summary>
    public string Input(string name, int elemType, params long[] dims)
    {
        Claim(name);
        _graph.Input.Add(ValueInfo(name, elemType, dims));
        return name;
    }

    /// <summary>Declares an existing value as a graph output.</summary>
    public void Output(string name, int elemType, params long[] dims) => _graph.Output.Add(ValueInfo(name, elemType, dims));

    /// <summary>Adds a float initializer (a parameter or constant) under exactly this name.</summary>
    public string Initializer(string name, ReadOnlySpan<float> data, params long[] dims)
    {
        Claim(name);
        return AddInitializer(TensorData.FromFloats(name, data, dims));
    }

    /// <summary>Adds an int64 initializer under exactly this name.</summary>
    public string Initializer(string name, ReadOnlySpan<long> data, params long[] dims)
    {
        Claim(name);
        return AddInitializer(TensorData.FromInt64s(name, data, dims));
    }

    /// <summary>A float constant with a fresh name.</summary>
    public string Constant(string prefix, ReadOnlySpan<float> data, params long[] dims) =>
        AddInitializer(TensorData.FromFloats(Fresh(prefix), data, dims));

    /// <summary>An int64 constant with a fresh name (shapes, axes).</summary>
    public string ConstantInt64(string prefix, params long[] data) =>
        AddInitializer(TensorData.FromInt64s(Fresh(prefix), data, data.Length));

    /// <summary>A scalar (rank 0) int64 constant: an index, as PyTorch's exporter writes x.shape[i].</summary>
    public string ScalarInt64(string prefix, long value) => AddInitializer(TensorData.FromInt64s(Fresh(prefix), [value]));

    /// <summary>A scalar float constant.</summary>
    public string Scalar(string prefix, float value) => AddInitializer(TensorData.FromFloats(Fresh(prefix), [value]));

    /// <summary>Adds a ready-made initializer whose name is already claimed or fresh.</summary>
    private string AddInitializer(Proto.TensorProto tensor)
    {
        _names.Add(tensor.Name);
        _graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    /// <summary>Adds a node with one output; returns the output's name.</summary>
    /// <param name="opType">The ONNX operator, e.g. <c>Conv</c>.</param>
    /// <param name="inputs">Input value names; an empty string marks an omitted optional input.</param>
    /// <param name="output">The output name, or null for a fresh one derived from <paramref name="opType"/>.</param>
    /// <param name="attributes">Node attributes (see <see cref="Attr"/>).</param>
    public string Node(string opType, IReadOnlyList<string> inputs, string? output = null, params AttributeProto[] attributes) =>
        NodeMulti(opType, inputs, [output ?? Fresh(opType.ToLowerInvariant())], attributes)[0];

    /// <summary>Adds a node with several outputs, named exactly as given.</summary>
    public IReadOnlyList<string> NodeMulti(string opType, IReadOnlyList<string> inputs, IReadOnlyList<string> outputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = Fresh("n_" + (outputs.Count > 0 ? outputs[0] : opType)) };
        node.Input.AddRange(inputs);
        foreach (var o in outputs)
        {
            _names.Add(o);
        }
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        _graph.Node.Add(node);
        return outputs;
    }

    /// <summary>Wraps the graph into a model with the default opset and IR version.</summary>
    public ModelProto Build(string producer = "OnnxAttribution", int opset = DefaultOpset, long irVersion = DefaultIrVersion)
    {
        var model = new ModelProto
        {
            IrVersion = irVersion,
            ProducerName = producer,
            ProducerVersion = "1",
            Graph = _graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        return model;
    }

    /// <summary>A graph input or output description: its name, element type and dimensions (a negative dimension is symbolic, named "batch").</summary>
    public static ValueInfoProto ValueInfo(string name, int elemType, IReadOnlyList<long> dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
        {
            shape.Dim.Add(d < 0 ? new TensorShapeProto.Types.Dimension { DimParam = "batch" } : new TensorShapeProto.Types.Dimension { DimValue = d });
        }
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = elemType, Shape = shape } },
        };
    }

    private void Claim(string name)
    {
        if (!_names.Add(name))
        {
            throw new ArgumentException($"graph '{_graph.Name}': the name '{name}' is already used");
        }
    }
}
