using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Evaluation;

namespace OnnxAttribution.Training.Evaluation;

/// <summary>The rows of an LDS result: one per method (and Journey-TRAK's per-step row), with costs and setting point.</summary>
public static partial class EvaluationRuns
{
    /// <summary>What a method's setting costs: its store's build, its queries and its bytes.</summary>
    /// <param name="BuildSeconds">Building the store (NaN: built by an earlier run that did not record it).</param>
    /// <param name="BuildSecondsPerExample">The same per training example.</param>
    /// <param name="ScoreSeconds">Scoring every test query (NaN where read back from a run that did not record it).</param>
    /// <param name="QueryMilliseconds">The same per query.</param>
    /// <param name="StoreBytes">The store folder's size.</param>
    private sealed record Costs(double BuildSeconds, double BuildSecondsPerExample, double ScoreSeconds, double QueryMilliseconds, long StoreBytes);

    /// <summary>One method's LDS row: the mean LDS with its bootstrap interval over queries, the permutation test, and costs.</summary>
    private sealed record LdsRow(string Method, string Output, double Lds, double Low, double High, double P, double NullLow, double NullHigh, int Queries,
        Costs Costs, double[] PerQuery)
    {
        public LdsRow(string method, string output, Interval interval, PermutationResult test, Costs costs, double[] perQuery)
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
    private sealed record PointSetting(int Timesteps, int NoiseDraws, int Dim, int ReferenceModels, int QueryTimesteps, string Projector);

    /// <summary>Journey-TRAK's LDS at one step of the trajectory.</summary>
    private sealed record JourneyStepRow(long Timestep, double Lds, double Low, double High);

    private static MethodSettings MethodSettingsFor(LdsOptions o, string referenceDir) => new()
    {
        Timesteps = o.Timesteps,
        NoiseDraws = o.NoiseDraws,
        Dim = o.Dim,
        Projector = o.Projector,
        Damping = o.Damping,
        Seed = o.Seed,
        JourneySteps = o.JourneySteps,
        Checkpoints = CheckpointsOf(referenceDir),
    };

    /// <summary>Saved training checkpoints exported beside a model (checkpoints/step-*), for TracIn.</summary>
    private static List<string> CheckpointsOf(string modelDirectory)
    {
        var dir = Path.Combine(modelDirectory, "checkpoints");
        return Directory.Exists(dir) ? Directory.GetDirectories(dir, "step-*").Order(StringComparer.Ordinal).ToList() : [];
    }

    /// <summary>
    /// Permutations in each method's permutation test: the measured outputs of the M subsets are permuted among the
    /// subsets (one permutation for every query at once, <see cref="Lds.PermutationTest"/>), so p ≥ 1/1001.
    /// </summary>
    private const int Permutations = 1000;
}
