using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;

namespace OnnxAttribution.Core.Attribution.Influence;

/// <summary>
/// Per-example weight gradients of the layers with Kronecker factors, as matrices: G_ℓ = Σₛ gₛ aₛᵀ (outDim × inDim) from
/// the gradient graph's a.&lt;layer&gt; and g.&lt;layer&gt; outputs, averaged over the plan's (t, ε) pairs.
/// </summary>
internal static class LayerGradients
{
    /// <summary>The layers of a gradient graph that has Kronecker factors, in the graph's order.</summary>
    /// <exception cref="GraphContractException">The graph has no factor outputs.</exception>
    public static IReadOnlyList<KroneckerLayerShape> Shapes(GradientSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var factors = source.Factors();
        if (factors.Count == 0)
        {
            throw new GraphContractException("the gradient graph has no Kronecker factors (a.*, g.* outputs); K-FAC needs a graph built with factors");
        }
        return factors.Select(f => new KroneckerLayerShape(f.Layer, f.InDim, f.OutDim, f.Positions)).ToList();
    }

    /// <summary>The graph outputs holding the factors of every layer (a.ℓ, g.ℓ, …).</summary>
    public static IReadOnlyList<string> Outputs(GradientSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return source.Factors().SelectMany(f => new[] { f.A, f.G }).ToList();
    }

    /// <summary>One pair's graph outputs as per-layer factors, in <see cref="Shapes"/> order.</summary>
    public static IReadOnlyList<LayerFactors> Factors(IReadOnlyList<KroneckerLayerShape> shapes, IReadOnlyDictionary<string, float[]> outputs)
    {
        ArgumentNullException.ThrowIfNull(shapes);
        ArgumentNullException.ThrowIfNull(outputs);
        return shapes.Select(s => new LayerFactors(outputs["a." + s.Name], outputs["g." + s.Name], s.Positions)).ToList();
    }

    /// <summary>
    /// The gradients of <paramref name="count"/> images for the source's measurement: per layer, count × outDim × inDim
    /// values (example-major), each the average over the plan's pairs.
    /// </summary>
    /// <param name="source">The gradient source.</param>
    /// <param name="images">The images.</param>
    /// <param name="count">How many.</param>
    /// <param name="conditions">One condition value per image for a conditional model; empty otherwise.</param>
    public static float[][] Compute(GradientSource source, ReadOnlySpan<float> images, int count, ReadOnlySpan<long> conditions = default)
    {
        var shapes = Shapes(source);
        var result = shapes.Select(s => new float[(long)count * s.OutDim * s.InDim]).ToArray();
        source.ForEachPair(images, count, Outputs(source), (values, weight) =>
        {
            var factors = Factors(shapes, values);
            Parallel.For(0, shapes.Count * count, task =>
            {
                int l = task / count, n = task % count;
                var (_, inDim, outDim, s) = shapes[l];
                var gradient = new float[outDim * inDim];
                var scratch = new float[s * outDim];
                KroneckerKernels.OuterSum(factors[l].Activations.Span.Slice(n * s * inDim, s * inDim),
                    factors[l].OutputGradients.Span.Slice(n * s * outDim, s * outDim), s, inDim, outDim, scratch, gradient);
                var target = result[l].AsSpan(n * outDim * inDim, outDim * inDim);
                System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(gradient, weight, target, target);
            });
        }, default, null, conditions);
        return result;
    }
}
