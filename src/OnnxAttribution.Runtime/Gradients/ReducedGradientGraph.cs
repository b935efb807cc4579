using OnnxAttribution.Onnx.Proto;
using OnnxAttribution.Onnx;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Runtime.Gradients;

/// <summary>
/// A gradient graph that computes its cotangent from its own ε̂ (<see cref="VjpSession.CotangentFromOutput"/>), wrapped so
/// that one run takes one clean image and n of its (t, ε) pairs and returns only the pairs' weighted, projected sum: the
/// per-pair gradients stay where ONNX Runtime computed them (on the GPU with the CUDA provider).
/// </summary>
/// <remarks>
/// <para>Inputs: <c>x0</c> [1, C, H, W]; <c>noise</c> [n, C, H, W]; <c>t</c> [n]; <c>signal_scale</c> and <c>noise_scale</c>
/// [n, 1, 1, 1] (√ᾱ_t and √(1−ᾱ_t)); <c>pair_weights</c> [1, n]; <c>cotangent_weights</c> [3]; and for dense features one
/// <c>projection.&lt;grad output&gt;</c> [size, k] per parameter tensor: that tensor's rows of P.</para>
/// <para>In the graph: x_t = signal_scale·x0 + noise_scale·noise, the target is the noise, then the gradient graph. Outputs:
/// <c>features</c> [1, k] = Σᵢ wᵢ·(the pair's projected gradient) — for dense features Σ over parameter tensors of
/// (Σᵢ wᵢ gᵢ)ᵀP_block, for factored features Σᵢ wᵢ·projected_factorsᵢ; <c>pair_losses</c> [n, 1] = ‖ε − ε̂‖²/D per pair; and for
/// dense features <c>gradient_norm</c> [1] = ‖Σᵢ wᵢ gᵢ‖.</para>
/// </remarks>
public static class ReducedGradientGraph
{
    /// <summary>The clean image input.</summary>
    public const string CleanInput = "x0";

    /// <summary>The pairs' noise input ε, also the measurement's target.</summary>
    public const string NoiseInput = "noise";

    /// <summary>√ᾱ_t per pair.</summary>
    public const string SignalScaleInput = "signal_scale";

    /// <summary>√(1−ᾱ_t) per pair.</summary>
    public const string NoiseScaleInput = "noise_scale";

    /// <summary>The pairs' weights in the sum.</summary>
    public const string WeightsInput = "pair_weights";

    /// <summary>The prefix of the dense projection's inputs, one per gradient output.</summary>
    public const string ProjectionPrefix = "projection.";

    /// <summary>The weighted, projected sum [1, k].</summary>
    public const string FeaturesOutput = "features";

    /// <summary>Each pair's diffusion loss ‖ε − ε̂‖²/D, [n, 1].</summary>
    public const string LossesOutput = "pair_losses";

    /// <summary>‖Σᵢ wᵢ gᵢ‖ of dense features, [1].</summary>
    public const string NormOutput = "gradient_norm";

    /// <summary>Wraps <paramref name="gradientGraph"/> (left unchanged).</summary>
    /// <param name="gradientGraph">A gradient graph with inputs x_t, t, target and cotangent_weights.</param>
    /// <param name="denseBlocks">For dense features: each grad.* output and its size per pair, in parameter order; null for factored.</param>
    /// <param name="projectedFactors">For factored features: the graph's projected_factors output; null for dense.</param>
    /// <param name="dim">k.</param>
    /// <exception cref="GraphContractException">The graph does not take target and cotangent_weights, or lacks an output named.</exception>
    public static ModelProto Wrap(ModelProto gradientGraph, IReadOnlyList<(string Output, long Size)>? denseBlocks, string? projectedFactors, int dim)
    {
        ArgumentNullException.ThrowIfNull(gradientGraph);
        if ((denseBlocks is null) == (projectedFactors is null))
        {
            throw new ArgumentException("give either the dense blocks or the projected-factors output");
        }
        var model = gradientGraph.Clone();
        var graph = model.Graph;
        var xt = graph.Input.SingleOrDefault(i => i.Name == VjpSession.InputXt);
        var target = graph.Input.SingleOrDefault(i => i.Name == VjpSession.InputTarget);
        if (xt is null || target is null || graph.Input.All(i => i.Name != VjpSession.InputCotangentWeights))
        {
            throw new GraphContractException("the gradient graph must take x_t, target and cotangent_weights to be reduced in the graph");
        }
        var dims = xt.Type.TensorType.Shape.Dim.Skip(1).Select(d => d.DimValue).ToArray();
        graph.Input.Remove(xt);
        graph.Input.Remove(target);
        var outputs = graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var name in denseBlocks?.Select(b => b.Output) ?? [projectedFactors!])
        {
            if (!outputs.Contains(name))
            {
                throw new GraphContractException($"the gradient graph has no output '{name}'");
            }
        }
        graph.Output.Clear();

        var g = new GraphBuilder(graph);
        int before = graph.Node.Count;
        g.Input(CleanInput, TensorData.Float, [1, .. dims]);
        g.Input(NoiseInput, TensorData.Float, [-1, .. dims]);
        g.Input(SignalScaleInput, TensorData.Float, -1, 1, 1, 1);
        g.Input(NoiseScaleInput, TensorData.Float, -1, 1, 1, 1);
        g.Input(WeightsInput, TensorData.Float, 1, -1);
        string signal = g.Node("Mul", [SignalScaleInput, CleanInput]);
        string noise = g.Node("Mul", [NoiseScaleInput, NoiseInput]);
        g.Node("Add", [signal, noise], VjpSession.InputXt);
        g.Node("Identity", [NoiseInput], VjpSession.InputTarget);
        // The new nodes feed the gradient graph: they go first (ONNX wants the nodes in topological order).
        var prefix = graph.Node.Skip(before).ToList();
        for (int i = graph.Node.Count - 1; i >= before; i--)
        {
            graph.Node.RemoveAt(i);
        }
        for (int i = 0; i < prefix.Count; i++)
        {
            graph.Node.Insert(i, prefix[i]);
        }

        long d = dims.Aggregate(1L, (a, b) => a * b);
        string diff = g.Node("Sub", [NoiseInput, VjpSession.OutputEps]);
        string squares = g.Node("Reshape", [g.Node("Mul", [diff, diff]), g.ConstantInt64("rows", 0, -1)]);
        var mean = new float[d];
        Array.Fill(mean, 1f / d);
        g.Node("MatMul", [squares, g.Constant("mean", mean, d, 1)], LossesOutput);
        g.Output(LossesOutput, TensorData.Float, -1, 1);

        if (projectedFactors is not null)
        {
            g.Node("MatMul", [WeightsInput, projectedFactors], FeaturesOutput);
        }
        else
        {
            var parts = new List<string>();
            var squaredNorms = new List<string>();
            foreach (var (output, size) in denseBlocks!)
            {
                string flat = g.Node("Reshape", [output, g.ConstantInt64("rows", 0, size)]);
                string summed = g.Node("MatMul", [WeightsInput, flat]);
                string projection = g.Input(ProjectionPrefix + output, TensorData.Float, size, dim);
                parts.Add(g.Node("MatMul", [summed, projection]));
                squaredNorms.Add(g.Node("ReduceSumSquare", [summed], null, Attr.Int("keepdims", 0)));
            }
            g.Node(parts.Count == 1 ? "Identity" : "Sum", parts, FeaturesOutput);
            string total = squaredNorms.Count == 1 ? squaredNorms[0] : g.Node("Sum", squaredNorms);
            g.Node("Reshape", [g.Node("Sqrt", [total]), g.ConstantInt64("one", 1)], NormOutput);
            g.Output(NormOutput, TensorData.Float, 1);
        }
        g.Output(FeaturesOutput, TensorData.Float, 1, dim);
        return model;
    }
}
