namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// A batch of examples with the (x_t, target noise, t) pairs the gradient graph runs on and their weights, from
/// <see cref="GradientSource.Clean"/> (the plan's pairs of clean images) or <see cref="GradientSource.Noisy"/> (one given pair).
/// </summary>
internal sealed class ExampleBatch
{
    private readonly Action<IReadOnlyList<string>, Action<Dictionary<string, float[]>, float>> _run;

    internal ExampleBatch(int count, Action<IReadOnlyList<string>, Action<Dictionary<string, float[]>, float>> run)
    {
        Count = count;
        _run = run;
    }

    /// <summary>B, the number of examples.</summary>
    public int Count { get; }

    /// <summary>The B clean images of a <see cref="GradientSource.Clean"/> batch (B·C·H·W values); null for other batches.</summary>
    public float[]? CleanImages { get; init; }

    /// <summary>The B condition values of a <see cref="GradientSource.Clean"/> batch of a conditional model; empty otherwise.</summary>
    public long[] Conditions { get; init; } = [];

    /// <summary>Runs each pair and hands the requested gradient-graph outputs (B rows each) and the pair's weight to <paramref name="accumulate"/>.</summary>
    public void Run(IReadOnlyList<string> outputs, Action<Dictionary<string, float[]>, float> accumulate)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(accumulate);
        _run(outputs, accumulate);
    }
}
