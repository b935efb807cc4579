using System.Numerics.Tensors;

namespace OnnxAttribution.Core.Attribution.Methods;

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
