namespace OnnxAttribution.Core.Attribution;

/// <summary>
/// One (timestep, draw) pair of a batch as
/// <see cref="GradientSource.ForEachPair(ReadOnlySpan{float}, int, IReadOnlyList{string}, ReadOnlySpan{long}, Action{PairBatch}, CotangentFunction, ReadOnlySpan{long})"/>
/// hands it out: its weight, each example's loss, and the gradient-graph outputs asked for.
/// </summary>
/// <remarks>Its arrays and values are valid only during the callback.</remarks>
internal sealed class PairBatch
{
    private readonly int _exampleLength;

    internal PairBatch(int count, int exampleLength, float weight, int timestepIndex, int draw)
    {
        Count = count;
        TimestepIndex = timestepIndex;
        Draw = draw;
        _exampleLength = exampleLength;
        Weight = weight;
        NoiseArray = new float[count * exampleLength];
        PredictionArray = new float[count * exampleLength];
    }

    /// <summary>B, the examples of the batch.</summary>
    public int Count { get; }

    /// <summary>The pair's weight in the plan's average, 1/pairs.</summary>
    public float Weight { get; }

    /// <summary>The pair's timestep index in the plan (0 in the one-random-timestep mode).</summary>
    public int TimestepIndex { get; }

    /// <summary>The pair's noise draw at its timestep.</summary>
    public int Draw { get; }

    /// <summary>The gradient-graph outputs asked for, each B·(per-example size) values; empty when none were asked for.</summary>
    public Dictionary<string, float[]> Outputs { get; internal set; } = [];

    internal float[] NoiseArray { get; }

    internal float[] PredictionArray { get; }

    /// <summary>The diffusion loss ‖ε − ε̂‖²/D of example <paramref name="example"/> at this pair, in float64.</summary>
    public double Loss(int example)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(example);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(example, Count);
        return Measurement.Loss(PredictionArray.AsSpan(example * _exampleLength, _exampleLength), NoiseArray.AsSpan(example * _exampleLength, _exampleLength));
    }
}
