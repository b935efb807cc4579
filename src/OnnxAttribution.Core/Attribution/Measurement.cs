namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// The function f whose gradient is attributed, as a cotangent fed to the gradient graph (DESIGN.md: one graph
/// serves every measurement). D is the number of output elements per example.
/// </summary>
public enum MeasurementKind
{
    /// <summary>The diffusion loss ‖ε − ε̂‖²/D; cotangent 2(ε̂ − ε)/D (TRAK with the training loss).</summary>
    Loss,

    /// <summary>D-TRAK's "Square": the squared output norm ‖ε̂‖²/D; cotangent 2ε̂/D (Zheng et al. 2024, Table 1).</summary>
    Square,

    /// <summary>
    /// The mean of the output, Σε̂/D; cotangent 1/D everywhere. DAS's public code differentiates this (Lin et al. 2024): the
    /// output's Jacobian projected onto the all-ones direction, the paper's speed-up of projecting the output dimension taken to one.
    /// </summary>
    Mean,
}

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
        float scale = 2f / perExample;
        switch (kind)
        {
            case MeasurementKind.Loss:
                System.Numerics.Tensors.TensorPrimitives.Subtract(epsHat, noise, destination);
                System.Numerics.Tensors.TensorPrimitives.Multiply(destination, scale, destination);
                break;
            case MeasurementKind.Square:
                System.Numerics.Tensors.TensorPrimitives.Multiply(epsHat, scale, destination);
                break;
            case MeasurementKind.Mean:
                destination.Fill(1f / perExample);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown measurement");
        }
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
}
