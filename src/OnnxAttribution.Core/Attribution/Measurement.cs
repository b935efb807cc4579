using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// Writes the cotangents fed to the gradient graph for a batch at one (timestep index, noise draw) pair of a
/// <see cref="FeaturizationPlan"/>: B·D values from the model's ε̂ and the noise that made x_t (B·D values each).
/// </summary>
public delegate void CotangentFunction(int timestepIndex, int draw, ReadOnlySpan<float> epsHat, ReadOnlySpan<float> noise, Span<float> destination);

/// <summary>Cotangents of the measurement functions.</summary>
public static class Measurement
{
    /// <summary>Writes ∂f/∂ε̂ for a batch.</summary>
    /// <param name="kind">The measurement.</param>
    /// <param name="epsHat">The model's predicted noise, B·D values.</param>
    /// <param name="noise">The noise that made x_t, B·D values (used by <see cref="MeasurementKind.Loss"/> only).</param>
    /// <param name="perExample">D, the output size of one example.</param>
    /// <param name="destination">B·D cotangent values.</param>
    public static void Cotangent(MeasurementKind kind, ReadOnlySpan<float> epsHat, ReadOnlySpan<float> noise, int perExample, Span<float> destination)
    {
        if (epsHat.Length != destination.Length || (kind == MeasurementKind.Loss && noise.Length != epsHat.Length))
        {
            throw new ArgumentException($"measurement {kind}: ε̂ has {epsHat.Length} values, noise {noise.Length}, destination {destination.Length}");
        }
        // w₀·ε̂ + w₁·ε + w₂: the form a gradient graph that computes its own cotangent evaluates (equal to rounding).
        var w = CotangentWeights(kind, perExample);
        System.Numerics.Tensors.TensorPrimitives.Multiply(epsHat, w[0], destination);
        if (w[1] != 0f)
        {
            System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(noise, w[1], destination, destination);
        }
        if (w[2] != 0f)
        {
            System.Numerics.Tensors.TensorPrimitives.Add(destination, w[2], destination);
        }
    }

    /// <summary>
    /// The cotangent as weights (w₀, w₁, w₂) of w₀·ε̂ + w₁·ε + w₂: what <see cref="Cotangent"/> computes, and what a gradient
    /// graph that computes its cotangent from its own output (VjpSession.CotangentFromOutput) is given.
    /// </summary>
    /// <param name="kind">The measurement.</param>
    /// <param name="perExample">D, the output size of one example.</param>
    public static float[] CotangentWeights(MeasurementKind kind, int perExample)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(perExample, 1);
        float scale = 2f / perExample;
        return kind switch
        {
            MeasurementKind.Loss => [scale, -scale, 0f],
            MeasurementKind.Square => [scale, 0f, 0f],
            MeasurementKind.Mean => [0f, 0f, 1f / perExample],
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown measurement"),
        };
    }

    /// <summary>The measurement's value for one example (for reports and counterfactual checks).</summary>
    public static double Value(MeasurementKind kind, ReadOnlySpan<float> epsHat, ReadOnlySpan<float> noise)
    {
        double s = 0;
        for (int i = 0; i < epsHat.Length; i++)
        {
            double d = kind == MeasurementKind.Loss ? epsHat[i] - noise[i] : epsHat[i];
            s += kind == MeasurementKind.Mean ? d : d * d;
        }
        return s / epsHat.Length;
    }

    /// <summary>The diffusion loss ‖ε − ε̂‖²/D of one example, in float64.</summary>
    public static double Loss(ReadOnlySpan<float> epsHat, ReadOnlySpan<float> noise) => Value(MeasurementKind.Loss, epsHat, noise);

    /// <summary>The measurement's name in a store's meta.json (e.g. "diffusion-loss").</summary>
    public static string StoreName(MeasurementKind kind) => kind switch
    {
        MeasurementKind.Loss => "diffusion-loss",
        MeasurementKind.Square => "squared-output-norm",
        MeasurementKind.Mean => "mean-output",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown measurement"),
    };

    /// <summary>The measurement a meta.json name stands for.</summary>
    /// <exception cref="AttributionException">The name is not one of <see cref="StoreName"/>'s.</exception>
    public static MeasurementKind FromStoreName(string name) =>
        Enum.GetValues<MeasurementKind>().Where(k => StoreName(k) == name).Select(k => (MeasurementKind?)k).FirstOrDefault()
        ?? throw new AttributionException($"meta.json: field 'measurement' is '{name}'; known: {string.Join(", ", Enum.GetValues<MeasurementKind>().Select(StoreName))}");
    /// <summary>
    /// Monte-Carlo Fisher samples of the diffusion loss (Martens &amp; Grosse 2015, sampled Fisher; Mlodozeniec et al. 2024,
    /// GGN of the diffusion loss): cotangent c = √(2/D)·z with z ~ N(0, I) drawn per example and pair, so the pseudo-gradient Jᵀc has
    /// E[Jᵀc cᵀJ] = Jᵀ(2/D)J, the Gauss–Newton matrix of ‖ε − ε̂‖²/D (the loss is the negative log-likelihood of
    /// ε ~ N(ε̂, D/2·I) up to a constant, whose Fisher and GGN coincide).
    /// </summary>
    /// <remarks>
    /// z of example row r at pair p (= timestep index · draws + draw) is stream <see cref="FisherStreamBase"/> + r·pairs + p of
    /// <see cref="CounterRng"/> under <paramref name="seed"/>: reproducible per row whatever the batching, and apart from
    /// the plan's noise streams (0 … pairs − 1) even when both seeds are equal.
    /// </remarks>
    /// <param name="seed">Seed of the draws.</param>
    /// <param name="firstRow">Dataset row of the batch's first example.</param>
    /// <param name="plan">The plan whose pairs are run.</param>
    /// <param name="perExample">D, the output size of one example.</param>
    public static CotangentFunction FisherSample(long seed, long firstRow, FeaturizationPlan plan, int perExample)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentOutOfRangeException.ThrowIfNegative(firstRow);
        ArgumentOutOfRangeException.ThrowIfLessThan(perExample, 1);
        long pairs = plan.Pairs;
        int draws = plan.NoiseDraws;
        float scale = (float)Math.Sqrt(2.0 / perExample);
        return (timestepIndex, draw, epsHat, _, destination) =>
        {
            if (epsHat.Length != destination.Length || destination.Length % perExample != 0)
            {
                throw new ArgumentException($"Fisher sample: ε̂ has {epsHat.Length} values, destination {destination.Length}; expected whole examples of {perExample}");
            }
            long pair = (long)timestepIndex * draws + draw;
            for (int b = 0; b < destination.Length / perExample; b++)
            {
                var z = destination.Slice(b * perExample, perExample);
                new CounterRng(seed, FisherStreamBase + (firstRow + b) * pairs + pair).FillNormal(z);
                System.Numerics.Tensors.TensorPrimitives.Multiply(z, scale, z);
            }
        };
    }

    /// <summary>First <see cref="CounterRng"/> stream of the Fisher draws (the negative half of the stream space).</summary>
    public const long FisherStreamBase = long.MinValue;
}
