using System.Numerics.Tensors;
using OnnxAttribution.Core.Sampling;
using OnnxAttribution.Core.Store;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// A query: the image attributed (C·H·W values in [-1, 1]) and, when it was generated here, its sampling trajectory
/// (methods that attribute steps of the trajectory need it).
/// </summary>
public sealed record AttributionQuery(string Label, float[] Image, Trajectory? Trajectory = null);

/// <summary>
/// One attribution method opened on its method store, answering queries with a score for every training row.
/// </summary>
/// <remarks>
/// Sign convention, the same for every method: a positive score says that training on the example is predicted to make
/// the query more likely (lower its diffusion loss); the LDS correlates summed scores with the negated measured loss.
/// </remarks>
public interface IAttributionScorer : IDisposable
{
    /// <summary>The method's name as the CLI spells it (e.g. "d-trak").</summary>
    string Method { get; }

    /// <summary>N, the number of training rows scored.</summary>
    long Rows { get; }

    /// <summary>Every row's score for each query: <c>queries.Count × Rows</c> values, query-major.</summary>
    float[] Scores(IReadOnlyList<AttributionQuery> queries, CancellationToken cancel = default);

    /// <summary>The <paramref name="top"/> best rows of each query (ties: lower row first).</summary>
    TopKResult[] TopK(IReadOnlyList<AttributionQuery> queries, int top, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var scores = Scores(queries, cancel);
        return Enumerable.Range(0, queries.Count).Select(q => TopKSelection.Select(scores.AsSpan(checked((int)(q * Rows)), checked((int)Rows)), top)).ToArray();
    }
}

/// <summary>
/// A method that scores each step of the query's sampling trajectory separately (Journey-TRAK).
/// </summary>
public interface IStepwiseScorer : IAttributionScorer
{
    /// <summary>The timesteps scored, in sampling order.</summary>
    IReadOnlyList<long> Steps { get; }

    /// <summary>
    /// For every query at once (one scan of each step's store): <c>queries × Steps.Count × Rows</c> scores, query-major,
    /// then step. <see cref="IAttributionScorer.Scores"/> is their mean over the steps (<see cref="MeanOverSteps"/>), so a
    /// caller that needs both computes the step scores once.
    /// </summary>
    float[] StepScores(IReadOnlyList<AttributionQuery> queries, CancellationToken cancel = default);

    /// <summary>For one query: <c>Steps.Count × Rows</c> scores, step-major.</summary>
    float[] StepScores(AttributionQuery query, CancellationToken cancel = default) => StepScores([query], cancel);

    /// <summary>The overall scores of <see cref="StepScores(IReadOnlyList{AttributionQuery}, CancellationToken)"/>: each query's mean over its steps, queries × rows.</summary>
    static float[] MeanOverSteps(ReadOnlySpan<float> stepScores, int queries, int steps, long rows)
    {
        int n = checked((int)rows);
        if (stepScores.Length != (long)queries * steps * n)
        {
            throw new ArgumentException($"{queries} queries × {steps} steps × {n} rows need {(long)queries * steps * n} scores, got {stepScores.Length}");
        }
        var mean = new float[queries * n];
        for (int q = 0; q < queries; q++)
        {
            var row = mean.AsSpan(q * n, n);
            for (int j = 0; j < steps; j++)
            {
                TensorPrimitives.Add(row, stepScores.Slice(((q * steps) + j) * n, n), row);
            }
            TensorPrimitives.Multiply(row, 1f / steps, row);
        }
        return mean;
    }
}

/// <summary>Top-k selection over a dense score vector, with the store's ordering (higher score first, then lower row).</summary>
public static class TopKSelection
{
    /// <summary>The <paramref name="top"/> best entries of <paramref name="scores"/> (entry i is row i); all of them when there are fewer.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="top"/> is negative.</exception>
    public static TopKResult Select(ReadOnlySpan<float> scores, int top)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(top, 0);
        int k = Math.Min(top, scores.Length);
        var heap = new TopKHeap(k);
        if (k > 0)
        {
            heap.Offer(scores, 0);
        }
        return TopKHeap.Merge([heap], k);
    }
}
