using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Evaluation;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Training.Evaluation;

/// <summary>An LDS run's scores: each method's at a damping, cached in the run's folder, and the combinations of methods.</summary>
internal static class LdsScoring
{
    /// <summary>
    /// The scores of <paramref name="queries"/> at <paramref name="damping"/> (null: the method has none), read from
    /// <paramref name="folder"/> when scored before from the same store at the same damping, else scored now (the store
    /// re-damped first when it holds another λ) and saved; with <paramref name="perDamping"/> each λ has its own file
    /// (a sweep), else one file per method holds the last λ scored.
    /// </summary>
    internal static Scored ScoreCached(string name, string storeDir, string referenceDir, SessionSettings session, List<AttributionQuery> queries, int rows,
        double? damping, IDampedMethod? damped, GramCache grams, string folder, bool perDamping, CancellationToken cancel)
    {
        cancel.ThrowIfCancellationRequested();
        Directory.CreateDirectory(folder);
        string stem = damping is null || !perDamping ? name : $"{name}-lambda-{LdsRun.Lambda(damping.Value)}";
        var scoresPath = Path.Combine(folder, stem + ".npy");
        var stepsPath = Path.Combine(folder, stem + "-steps.npy");
        var timingPath = Path.Combine(folder, stem + ".json");
        var saved = LdsFiles.TryRead<ScoreRecord>(timingPath);
        // Scores are reused only from the same store at the same damping and query timesteps, for as many queries.
        bool same = saved is not null && saved.Store == Path.GetFullPath(storeDir) && saved.QueryTimesteps == session.QueryTimesteps && saved.Damping == damping;
        long[]? timesteps = saved?.Steps;
        var cached = same ? EvaluationFolder.TryReadMatrix(scoresPath) : null;
        var cachedSteps = same && timesteps is not null ? EvaluationFolder.TryReadMatrix(stepsPath) : null;
        if (cached is { } hit && hit.Header.Rows == queries.Count && (timesteps is null || cachedSteps is not null))
        {
            return new Scored(hit.Values, cachedSteps?.Values, timesteps, saved?.ScoreSeconds ?? double.NaN);
        }
        if (damping is { } l && damped is not null && MethodManifest.Require(storeDir, name).Settings["damping"]?.GetValue<double>() != l)
        {
            damped.Redamp(storeDir, l, grams);
        }
        var watch = System.Diagnostics.Stopwatch.StartNew();
        float[] scores;
        float[]? stepScores = null;
        using (var scorer = AttributionMethods.Open(storeDir, AttributionMethods.Find(name).Capabilities.OwnModels ? null : referenceDir, session))
        {
            if (scorer.Rows != rows)
            {
                throw new UserInputException($"{storeDir}: scores {scorer.Rows} rows; the training set has {rows}");
            }
            if (scorer is IStepwiseScorer stepScorer)
            {
                timesteps = stepScorer.Steps.ToArray();
                stepScores = stepScorer.StepScores(queries, cancel);
                scores = IStepwiseScorer.MeanOverSteps(stepScores, queries.Count, timesteps.Length, rows);
                NpyFormat.WriteMatrix(stepsPath, stepScores, queries.Count, (long)timesteps.Length * rows);
            }
            else
            {
                timesteps = null;
                scores = scorer.Scores(queries, cancel);
            }
        }
        double seconds = watch.Elapsed.TotalSeconds;
        NpyFormat.WriteMatrix(scoresPath, scores, queries.Count, rows);
        JsonFile.Save(timingPath, new ScoreRecord(Path.GetFullPath(storeDir), damping, session.QueryTimesteps, seconds, timesteps));
        return new Scored(scores, stepScores, timesteps, seconds);
    }

    /// <summary>
    /// The LDS row of a combination of methods (<see cref="LdsOptions.Combinations"/>, e.g. <c>d-trak+kfac</c>): per query, each
    /// method's scores at its chosen λ standardised over the rows and averaged with equal weights; nothing is tuned on the
    /// test queries (the validation queries give its validation LDS, for the record). Build and query costs are the methods' sums.
    /// </summary>
    /// <exception cref="SettingException">A method of the combination is not among those scored.</exception>
    internal static LdsRow ScoreCombination(LdsOptions o, string combination, LdsGround ground, int rows, List<LdsRow> scored,
        Dictionary<string, (float[] Validation, float[] Test)> chosenScores)
    {
        var parts = combination.Split('+', StringSplitOptions.TrimEntries);
        if (parts.Length < 2 || parts.Any(p => !chosenScores.ContainsKey(p)) || parts.Distinct(StringComparer.Ordinal).Count() != parts.Length)
        {
            throw new SettingException("Combinations", combination, $"must join two or more different methods of --methods with '+' ({string.Join(", ", o.Methods)})");
        }
        float[] Combine(Func<(float[] Validation, float[] Test), float[]> pick, int queries)
        {
            var sum = new float[queries * rows];
            foreach (var part in parts)
            {
                CombinedScorer.AddStandardised(pick(chosenScores[part]), queries, rows, 1.0 / parts.Length, sum);
            }
            return sum;
        }
        var test = Combine(s => s.Test, o.Queries);
        var validation = Combine(s => s.Validation, o.ValidationQueries);
        double validationLds = Lds.PerQuery(Lds.Predict(validation, o.ValidationQueries, rows, ground.Subsets), ground.ValidationLoss, o.ValidationQueries,
            ground.Subsets.Length).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average();
        var predicted = Lds.Predict(test, o.Queries, rows, ground.Subsets);
        var perQuery = Lds.PerQuery(predicted, ground.MeasuredLoss, o.Queries, ground.Subsets.Length);
        var interval = Lds.Bootstrap(perQuery, 2000, o.Seed);
        var permutation = Lds.PermutationTest(predicted, ground.MeasuredLoss, o.Queries, ground.Subsets.Length, LdsRun.Permutations, o.Seed);
        var members = scored.Where(r => parts.Contains(r.Method, StringComparer.Ordinal)).ToList();
        var costs = new Costs(members.Sum(r => r.Costs.BuildSeconds), members.Sum(r => r.Costs.BuildSecondsPerExample), members.Sum(r => r.Costs.ScoreSeconds),
            members.Sum(r => r.Costs.QueryMilliseconds), members.Sum(r => r.Costs.StoreBytes));
        var ceiling = ground.Ceiling;
        var row = new LdsRow(combination, "final image", interval, permutation, costs, perQuery)
        {
            QueryMeanRemoved = Lds.PerQuery(Lds.Predict(Lds.RemoveQueryMean(test, o.Queries, rows), o.Queries, rows, ground.Subsets), ground.MeasuredLoss, o.Queries,
                ground.Subsets.Length).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average(),
            QueryAgreement = Lds.QueryAgreement(test, o.Queries, rows),
            ValidationLds = validationLds,
            Ceiling = ceiling?.Mean.Mean,
            FractionOfCeiling = ceiling is { Mean.Mean: > 0 } ? interval.Mean / ceiling.Mean.Mean : null,
            Setting = members[0].Setting,
            Command = o.CommandLine,
        };
        o.Observer.Note($"{combination}: LDS {100 * interval.Mean:F1}% [{100 * interval.Low:F1}, {100 * interval.High:F1}] over {interval.Count} queries, " +
            $"permutation p = {permutation.P:F3}" + (ceiling is null ? "" : $", {100 * row.FractionOfCeiling:F0}% of the ceiling"));
        return row;
    }
}

/// <summary>A method's scores for a set of queries (and, for a stepwise method, per step), with the seconds scoring took.</summary>
internal sealed record Scored(float[] Scores, float[]? StepScores, long[]? Timesteps, double Seconds);
