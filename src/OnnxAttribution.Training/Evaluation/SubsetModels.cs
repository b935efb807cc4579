using System.Globalization;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Training.Evaluation;

/// <summary>
/// The M × S retrained models of an LDS evaluation: every subset trained S times with different seeds. Model (j, s) lives in
/// <c>subsets/model-jjj</c> for s = 0 and <c>subsets/model-jjj-seed-s</c> after, and depends only on the run's seed, j and s,
/// so a larger M or S keeps every model already trained.
/// </summary>
public static class SubsetModels
{
    /// <summary>The name of the seed stream of the subset models (<see cref="SeedStreams.Derive"/>).</summary>
    public const string SeedStream = "lds subset model";

    /// <summary>
    /// The training seed of model (j, s): <see cref="SeedStreams.Derive"/>(run seed, "lds subset model", j, s). Evaluations
    /// started before subsets had several seeds trained their one model per subset with seed run seed · 1000003 + j + 1;
    /// with <paramref name="legacySeedZero"/> those models are seed 0 of their subset and keep that seed.
    /// </summary>
    /// <param name="runSeed">The evaluation's --seed.</param>
    /// <param name="subset">j.</param>
    /// <param name="seedIndex">s.</param>
    /// <param name="legacySeedZero">The evaluation folder was started before --subset-seeds.</param>
    public static long TrainingSeed(long runSeed, int subset, int seedIndex, bool legacySeedZero) =>
        legacySeedZero && seedIndex == 0 ? (runSeed * 1_000_003) + subset + 1 : SeedStreams.Derive(runSeed, SeedStream, subset, seedIndex);

    /// <summary>Every model (j, s), j &lt; <paramref name="models"/>, s &lt; <paramref name="seeds"/>, seed-major (all subsets' seed 0 first).</summary>
    public static IReadOnlyList<SubsetModel> Plan(string outDirectory, long runSeed, int models, int seeds, bool legacySeedZero)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(models, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(seeds, 1);
        var plan = new List<SubsetModel>(models * seeds);
        for (int s = 0; s < seeds; s++)
        {
            for (int j = 0; j < models; j++)
            {
                var name = "model-" + j.ToString("D3", CultureInfo.InvariantCulture) + (s == 0 ? "" : "-seed-" + s.ToString(CultureInfo.InvariantCulture));
                var dir = Path.Combine(outDirectory, "subsets", name);
                plan.Add(new SubsetModel(j, s, TrainingSeed(runSeed, j, s, legacySeedZero), dir, dir + "-run"));
            }
        }
        return plan;
    }

    /// <summary>Calls <paramref name="train"/> for every model of the plan whose folder has no model.json yet (a finished export).</summary>
    /// <returns>How many models were trained.</returns>
    public static int TrainMissing(IReadOnlyList<SubsetModel> plan, Action<int, SubsetModel> train, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(train);
        int trained = 0;
        for (int i = 0; i < plan.Count; i++)
        {
            cancel.ThrowIfCancellationRequested();
            if (!File.Exists(Path.Combine(plan[i].Directory, ModelMetadata.FileName)))
            {
                train(i, plan[i]);
                trained++;
            }
        }
        return trained;
    }
}
