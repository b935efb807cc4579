using OnnxAttribution.Core.Evaluation;

namespace OnnxAttribution.Training.Evaluation;

/// <summary>What a method's setting costs: its store's build, its queries and its bytes.</summary>
/// <param name="BuildSeconds">Building the store (NaN: built by an earlier run that did not record it).</param>
/// <param name="BuildSecondsPerExample">The same per training example.</param>
/// <param name="ScoreSeconds">Scoring every test query (NaN where read back from a run that did not record it).</param>
/// <param name="QueryMilliseconds">The same per query.</param>
/// <param name="StoreBytes">The store folder's size.</param>
internal sealed record Costs(double BuildSeconds, double BuildSecondsPerExample, double ScoreSeconds, double QueryMilliseconds, long StoreBytes);

/// <summary>One method's LDS row: the mean LDS with its bootstrap interval over queries, the permutation test, and costs.</summary>
internal sealed record LdsRow(string Method, string Output, double Lds, double Low, double High, double P, double NullLow, double NullHigh, int Queries,
    Costs Costs, double[] PerQuery)
{
    internal LdsRow(string method, string output, Interval interval, PermutationResult test, Costs costs, double[] perQuery)
        : this(method, output, interval.Mean, interval.Low, interval.High, test.P, test.NullLow, test.NullHigh, interval.Count, costs, perQuery)
    {
    }

    /// <summary>Mean LDS on the validation queries at the chosen setting (for the final image's loss).</summary>
    public double ValidationLds { get; init; } = double.NaN;

    /// <summary>The damping chosen on the validation queries; null for a method without one.</summary>
    public double? Damping { get; init; }

    /// <summary>Every damping tried with its validation LDS; null for a method without one.</summary>
    public IReadOnlyList<DampingPoint>? DampingSweep { get; init; }

    /// <summary>The mean noise ceiling of the row's measured output; null without one (S = 1, or another measured output).</summary>
    public double? Ceiling { get; init; }

    /// <summary>The LDS divided by the mean noise ceiling; null without one (S = 1, another measured output, or a ceiling of 0).</summary>
    public double? FractionOfCeiling { get; init; }

    /// <summary>The setting point the row was measured at (K, noise draws, k, R).</summary>
    public PointSetting? Setting { get; init; }

    /// <summary>The command line that produced the row.</summary>
    public string Command { get; init; } = "";

    /// <summary>
    /// A diagnostic, not a method: the mean LDS after subtracting from each training example its mean score over
    /// the evaluation queries. High where this is much above <see cref="Lds"/>, the method's scores carry a large
    /// query-independent part (TracIn's "generally influential" examples) that hides what is specific to a query.
    /// </summary>
    public double QueryMeanRemoved { get; init; } = double.NaN;

    /// <summary>The mean Spearman correlation between two queries' score rows (<see cref="Lds.QueryAgreement"/>).</summary>
    public double QueryAgreement { get; init; } = double.NaN;
}

/// <summary>A setting point of the curves: the methods' K timesteps × noise draws, projection k, R reference models, and the
/// queries' timesteps Q (0: all K), and the projector (dense or factored).</summary>
internal sealed record PointSetting(int Timesteps, int NoiseDraws, int Dim, int ReferenceModels, int QueryTimesteps, string Projector);

/// <summary>Journey-TRAK's LDS at one step of the trajectory.</summary>
internal sealed record JourneyStepRow(long Timestep, double Lds, double Low, double High);

/// <summary>
/// lds{point}.json, what an LDS run writes: the setting, the noise ceiling and every method's row. lds.md and the curves
/// are generated from it alone (<see cref="LdsReportWriter"/>); a field an older run did not write reads as null or its default.
/// </summary>
internal sealed record LdsResultFile
{
    public string? Data { get; init; }

    public string? Subset { get; init; }

    public int N { get; init; }

    public int ImageSize { get; init; }

    public long ModelParameters { get; init; }

    public string? Reference { get; init; }

    public int ReferenceModels { get; init; }

    /// <summary>The setting point; null in a file written before points existed (the default point).</summary>
    public PointSetting? Setting { get; init; }

    public int SubsetModels { get; init; }

    public int SubsetSeeds { get; init; }

    public double Alpha { get; init; }

    public int Queries { get; init; }

    public string? QuerySeeds { get; init; }

    public int ValidationQueries { get; init; }

    public string? ValidationQuerySeeds { get; init; }

    public IReadOnlyList<double>? DampingGrid { get; init; }

    public TrainingRecipe? Recipe { get; init; }

    public string? Measured { get; init; }

    /// <summary>The noise ceiling; null with one training seed per subset.</summary>
    public LdsCeiling? Ceiling { get; init; }

    public IReadOnlyList<LdsRow>? Methods { get; init; }

    public int Permutations { get; init; }

    public IReadOnlyList<JourneyStepRow>? JourneySteps { get; init; }

    public IReadOnlyDictionary<string, double>? Timings { get; init; }

    public string? Command { get; init; }

    public double Seconds { get; init; }
}

/// <summary>The noise ceiling in lds.json: √ρ_S with its interval, the Spearman–Brown reliability, and each query's ceiling.</summary>
internal sealed record LdsCeiling(double Mean, double Low, double High, double Reliability, double ReliabilityLow, double ReliabilityHigh, int Splits, int HalfSize,
    double[]? PerQuery);
