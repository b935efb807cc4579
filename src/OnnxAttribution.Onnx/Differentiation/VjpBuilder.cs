using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx.Differentiation;

/// <summary>
/// Reverse-mode differentiation of an ONNX graph: from a forward model, emits the vector–Jacobian-product graph
/// of docs/design.md's contract. The result keeps the forward graph's inputs, adds one <c>cotangent</c> input shaped
/// like the output (or, with <see cref="VjpOptions.CotangentFromOutput"/>, <c>target</c> and <c>cotangent_weights</c>), and
/// outputs the forward output followed by per-example parameter gradients, Kronecker factors and/or their in-graph
/// projection, as the options ask.
/// </summary>
/// <remarks>
/// Axis 0 of the graph inputs is the batch. Per-example gradients are exact sums over the batch's own
/// positions (no cross-example terms), so they hold for any graph whose examples do not interact — the case for
/// every op covered here except BatchNormalization in training mode, which is refused.
/// </remarks>
public static class VjpBuilder
{
    /// <summary>The ops with a gradient rule.</summary>
    public static IReadOnlyCollection<string> SupportedOps { get; } = GradientRules.Rules.Keys.ToArray();

    /// <summary>Builds the gradient graph.</summary>
    /// <exception cref="UnsupportedOperatorException">An op on a differentiated path has no rule, or uses attributes the rule does not cover.</exception>
    /// <exception cref="OnnxGraphException">The graph is not of the expected form (one float output, known parameters).</exception>
    public static ModelProto Build(ModelProto forward, VjpOptions? options = null) => BuildCore(forward, options).Model;

    /// <summary>The name of the output holding the in-graph factored projection (<see cref="VjpOptions.FactorProjections"/>).</summary>
    public const string ProjectedFactorsOutput = "projected_factors";

    /// <summary>
    /// The layers that get Kronecker factors (Conv, Gemm and MatMul weights among the parameters), in the order of the
    /// factor outputs: the order <see cref="VjpOptions.FactorProjections"/> lays its blocks out in when given the same list.
    /// </summary>
    /// <param name="forward">The forward graph.</param>
    /// <param name="parameters">The differentiated initializers; null for <see cref="VjpOptions.Parameters"/>'s default.</param>
    public static IReadOnlyList<FactorLayer> FactorLayers(ModelProto forward, IReadOnlyList<string>? parameters = null)
    {
        var (_, factors, chosen) = BuildCore(forward, new VjpOptions { Parameters = parameters, PerExampleGradients = false, KroneckerFactors = true });
        return factors.Select(f => new FactorLayer(f.Layer, chosen.First(p => VjpContext.LayerName(p) == f.Layer), f.Positions, f.InDim, f.OutDim)).ToList();
    }

    private static (ModelProto Model, IReadOnlyList<FactorPair> Factors, IReadOnlyList<string> Parameters) BuildCore(ModelProto forward, VjpOptions? options)
    {
        ArgumentNullException.ThrowIfNull(forward);
        options ??= new VjpOptions();
        var model = OpsetAdapter.Convert(forward);
        if (ReferenceEquals(model, forward))
        {
            model = forward.Clone();
        }
        var graph = model.Graph;
        int opset = OpsetAdapter.OpsetOf(model);
        SelectOutput(graph, options.Output);

        var shapes = new ShapeInference(graph, opset);
        var initializers = graph.Initializer.ToDictionary(i => i.Name, StringComparer.Ordinal);
        var graphInputs = graph.Input.Select(i => i.Name).Where(n => !initializers.ContainsKey(n)).ToList();
        var floatInputs = graphInputs.Where(n => shapes.ElemType(n) == TensorData.Float).ToHashSet(StringComparer.Ordinal);

        var parameters = options.Parameters?.ToList() ?? DefaultParameters(graph, shapes, floatInputs);
        if (parameters.GroupBy(p => p, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } twice)
        {
            throw new OnnxGraphException($"graph '{graph.Name}': parameter '{twice.Key}' is listed {twice.Count()} times; list each parameter once");
        }
        foreach (var p in parameters)
        {
            if (!initializers.TryGetValue(p, out var init))
            {
                throw new OnnxGraphException($"graph '{graph.Name}': parameter '{p}' is not an initializer of the graph");
            }
            if (init.DataType != TensorData.Float)
            {
                throw new OnnxGraphException($"graph '{graph.Name}': parameter '{p}' has element type {init.DataType}; only float32 parameters are differentiated");
            }
        }
        if (options.FactorProjections is { } projections)
        {
            var layers = new HashSet<string>(StringComparer.Ordinal);
            foreach (var p in projections)
            {
                ArgumentNullException.ThrowIfNull(p, nameof(options));
                if (!layers.Add(p.Layer))
                {
                    throw new OnnxGraphException($"graph '{graph.Name}': layer '{p.Layer}' has more than one factor projection");
                }
                if (!parameters.Any(w => VjpContext.LayerName(w) == p.Layer))
                {
                    throw new OnnxGraphException($"graph '{graph.Name}': factor projection for layer '{p.Layer}', " +
                        $"which has no differentiated weight (layers: {string.Join(", ", parameters.Select(VjpContext.LayerName).Distinct())})");
                }
            }
            if (!options.PerExampleGradients && !options.KroneckerFactors)
            {
                if (layers.Count == 0)
                {
                    throw new OnnxGraphException($"graph '{graph.Name}': the options ask for no per-example gradients, no factors and no factor projections: nothing to compute");
                }
                parameters = parameters.Where(w => layers.Contains(VjpContext.LayerName(w))).ToList();
            }
        }
        foreach (var i in options.InputGradients)
        {
            if (!floatInputs.Contains(i))
            {
                throw new OnnxGraphException($"graph '{graph.Name}': '{i}' is not a float graph input (inputs: {string.Join(", ", graphInputs)})");
            }
        }

        // Activity: the values that depend on a differentiated parameter or input.
        var paramSet = parameters.ToHashSet(StringComparer.Ordinal);
        var active = new HashSet<string>(paramSet, StringComparer.Ordinal);
        active.UnionWith(options.InputGradients);
        foreach (var node in graph.Node)
        {
            if (node.Input.Any(active.Contains))
            {
                foreach (var o in node.Output.Where(o => o.Length > 0 && IsFloat(shapes.ElemType(o))))
                {
                    active.Add(o);
                }
            }
        }

        var output = graph.Output[0];
        if (!active.Contains(output.Name))
        {
            throw new OnnxGraphException($"graph '{graph.Name}': output '{output.Name}' does not depend on any differentiated parameter or input");
        }
        var declared = output.Type?.TensorType?.Shape?.Dim;
        var outShape = declared is { Count: > 0 }
            ? declared.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? d.DimValue : ShapeInference.Batch).ToArray()
            : shapes.TryShape(output.Name) ?? throw new OnnxGraphException(
                $"graph '{graph.Name}': the shape of output '{output.Name}' is neither declared nor inferable" + (shapes.Blocker(output.Name) is { } why ? $" ({why.Detail})" : ""));

        var forwardNodes = graph.Node.ToList();
        var builder = new GraphBuilder(graph);
        var ctx = new VjpContext(builder, shapes, opset, paramSet, active, options, forwardNodes);
        string cotangent;
        if (options.CotangentFromOutput)
        {
            // cotangent = w₀·y + w₁·target + w₂, each wᵢ a one-element slice of the weights input (broadcast).
            string target = builder.Input(options.TargetName, TensorData.Float, outShape);
            string weights = builder.Input(options.WeightsName, TensorData.Float, 3);
            string W(long i) => ctx.Op("Slice", [weights, ctx.Ints(i), ctx.Ints(i + 1)], [1]);
            cotangent = ctx.Op("Add", [ctx.Op("Add", [ctx.Mul(output.Name, W(0), outShape), ctx.Mul(target, W(1), outShape)], outShape), W(2)], outShape);
        }
        else
        {
            cotangent = builder.Input(options.CotangentName, TensorData.Float, outShape);
        }
        ctx.Cotangent = cotangent;
        shapes.Set(cotangent, outShape);
        ctx.AddGradient(output.Name, cotangent);

        for (int n = forwardNodes.Count - 1; n >= 0; n--)
        {
            var node = forwardNodes[n];
            if (!node.Input.Any(active.Contains) || !node.Output.Any(ctx.HasGradient))
            {
                continue;
            }
            if (!GradientRules.Rules.TryGetValue(node.OpType, out var rule) || (node.Domain.Length > 0 && node.Domain != "ai.onnx"))
            {
                throw new UnsupportedOperatorException(node.OpType, NodeLabel(node),
                    $"no gradient rule for this operator (domain '{node.Domain}'); the ops with rules are {string.Join(", ", SupportedOps.Order())}");
            }
            rule(ctx, node);
        }

        // Graph outputs, in a fixed order: the forward output, parameter gradients, factors, projected factors, input gradients.
        foreach (var p in parameters)
        {
            var shape = initializers[p].Dims.ToArray();
            if (options.PerExampleGradients)
            {
                string g = ctx.ParameterGradient(p) ?? ctx.ZerosPerExample(shape);
                long d0 = shape.Length > 0 ? shape[0] : 1;
                long rest = TensorData.ElementCount(shape) / Math.Max(d0, 1);
                string name = builder.Fresh("grad." + p);
                builder.Node("Reshape", [g, builder.ConstantInt64("shape", 0, d0, rest)], name);
                builder.Output(name, TensorData.Float, -1, d0, rest);
            }
        }
        // In the order of the parameter list (the reverse pass meets the layers last to first).
        var factors = ctx.Factors.OrderBy(f => parameters.FindIndex(p => VjpContext.LayerName(p) == f.Layer)).ToList();
        if (options.KroneckerFactors)
        {
            foreach (var f in factors)
            {
                builder.Output(f.A, TensorData.Float, -1, f.Positions, f.InDim);
                builder.Output(f.G, TensorData.Float, -1, f.Positions, f.OutDim);
            }
        }
        if (options.FactorProjections is { Count: > 0 } projected)
        {
            var blocks = projected.Select(p => ctx.ProjectedBlock(p.Layer)
                ?? throw new OnnxGraphException($"graph '{graph.Name}': layer '{p.Layer}' has no Conv, Gemm or MatMul weight gradient to project")).ToArray();
            builder.Node("Concat", blocks, ProjectedFactorsOutput, Attr.Int("axis", 1));
            builder.Output(ProjectedFactorsOutput, TensorData.Float, -1, projected.Sum(p => (long)p.InputDim * p.OutputDim));
        }
        foreach (var i in options.InputGradients)
        {
            string g = ctx.SumGradient(i) ?? throw new OnnxGraphException($"graph '{graph.Name}': input '{i}' does not reach the output");
            string name = builder.Fresh("grad." + i);
            builder.Node("Identity", [g], name);
            builder.Output(name, TensorData.Float, shapes.TryShape(i) ?? []);
        }
        return (model, factors, parameters);
    }

    /// <summary>Keeps only the output to differentiate: the named one, or the only one.</summary>
    private static void SelectOutput(GraphProto graph, string? name)
    {
        var names = string.Join(", ", graph.Output.Select(o => o.Name));
        if (name is null)
        {
            if (graph.Output.Count != 1)
            {
                throw new OnnxGraphException($"graph '{graph.Name}': differentiation needs one output, found {graph.Output.Count} ({names}); " +
                    "name the output to differentiate (VjpOptions.Output, differentiate --output)");
            }
            return;
        }
        var chosen = graph.Output.FirstOrDefault(o => o.Name == name)
            ?? throw new OnnxGraphException($"graph '{graph.Name}': there is no output '{name}' to differentiate (outputs: {names})");
        graph.Output.Clear();
        graph.Output.Add(chosen);
    }

    internal static string NodeLabel(NodeProto node) => node.Name.Length > 0 ? node.Name : node.Output.FirstOrDefault() ?? node.OpType;

    private static bool IsFloat(int elemType) => elemType == TensorData.Float || elemType == TensorData.Double || elemType == 0;

    /// <summary>The initializers that act as trainable parameters (see <see cref="VjpOptions.Parameters"/>).</summary>
    public static IReadOnlyList<string> DefaultParameters(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        model = OpsetAdapter.Convert(model);
        int opset = OpsetAdapter.OpsetOf(model);
        var shapes = new ShapeInference(model.Graph, opset);
        var inits = model.Graph.Initializer.Select(i => i.Name).ToHashSet();
        var floatInputs = model.Graph.Input.Select(i => i.Name).Where(n => !inits.Contains(n) && shapes.ElemType(n) == TensorData.Float).ToHashSet();
        return DefaultParameters(model.Graph, shapes, floatInputs);
    }

    /// <summary>
    /// The default choice of parameters, from the graph alone (PyTorch exports a frozen buffer and a learned tensor alike):
    /// every float initializer that is a Conv/ConvTranspose/Gemm/MatMul weight or bias, an embedding table read by Gather,
    /// or a normalisation's scale or shift, whatever its size; and every float initializer of more than one element that an
    /// Add, Sub, Mul or Div combines with a value computed from the data (the float inputs) or from a parameter already
    /// chosen — a bias, a norm scale written as Mul, a learned row folded into the step embedding. Constants combined with the
    /// timestep alone (a sinusoidal embedding's frequencies) are not chosen. <c>import --parameters/--exclude-parameters</c>
    /// override the choice where the graph cannot tell (a fixed position embedding added to the data looks like a bias).
    /// </summary>
    private static List<string> DefaultParameters(GraphProto graph, ShapeInference shapes, HashSet<string> floatInputs)
    {
        var floatInits = graph.Initializer.Where(i => i.DataType == TensorData.Float).ToDictionary(i => i.Name, i => TensorData.ElementCount(i.Dims), StringComparer.Ordinal);
        // A weight may reach its layer through Identity, Cast, Transpose, Reshape… (a view): the initializer is the parameter.
        var views = ParameterView.Find(graph.Node, floatInits.ContainsKey, shapes);
        string Root(string value) => views.TryGetValue(value, out var v) ? v.Root : value;
        var chosen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var node in graph.Node)
        {
            var inputs = node.Input.Select(Root).ToList();
            switch (node.OpType)
            {
                case "Conv" or "ConvTranspose" or "Gemm":
                    chosen.UnionWith(inputs.Skip(1).Where(floatInits.ContainsKey));
                    break;
                case "MatMul":
                    chosen.UnionWith(inputs.Where(floatInits.ContainsKey));
                    break;
                case "Gather":
                    // An embedding table (rows picked by the data, or fixed rows such as positions).
                    chosen.UnionWith(inputs.Take(1).Where(floatInits.ContainsKey));
                    break;
                case "BatchNormalization" or "GroupNormalization" or "LayerNormalization" or "InstanceNormalization":
                    chosen.UnionWith(inputs.Skip(1).Take(2).Where(floatInits.ContainsKey));
                    break;
            }
        }
        // In graph order: values computed from the data or from a chosen parameter, and the tensors combined with them.
        var active = new HashSet<string>(floatInputs, StringComparer.Ordinal);
        foreach (var node in graph.Node)
        {
            var inputs = node.Input.Select(Root).ToList();
            if (node.OpType is "Add" or "Sub" or "Mul" or "Div" && inputs.Count == 2)
            {
                for (int k = 0; k < 2; k++)
                {
                    if (floatInits.TryGetValue(inputs[k], out long count) && count > 1 && active.Contains(node.Input[1 - k]))
                    {
                        chosen.Add(inputs[k]);
                    }
                }
            }
            if (node.Input.Any(i => active.Contains(i) || chosen.Contains(Root(i))))
            {
                active.UnionWith(node.Output.Where(o => o.Length > 0 && IsFloat(shapes.ElemType(o))));
            }
        }
        // Keep the initializers' order: it is the order of the model's parameter list.
        return graph.Initializer.Select(i => i.Name).Where(chosen.Contains).ToList();
    }
}
