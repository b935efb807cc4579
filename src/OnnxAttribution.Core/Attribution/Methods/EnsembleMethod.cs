using OnnxAttribution.Core.Attribution.Ensembles;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// Encoded ensembles (Dai &amp; Gifford 2023, "Training Data Attribution for Diffusion Models", arXiv:2306.02174; docs/methods.md, Encoded ensembles): M models, member
/// m trained on the groups g with E[m,g] = 1 of an encoding matrix (<see cref="EnsembleDesign"/>). The score of group g
/// for a query q is the ablation estimate
/// τ(q)_g = mean_{m: E[m,g]=0} ℓ_m(q) − mean_{m: E[m,g]=1} ℓ_m(q),
/// with ℓ_m(q) the query's diffusion loss under member m at a fixed plan; a row's score is its group's. Positive: the
/// members that saw the group give the query a lower loss. Forward passes only, no gradients.
/// </summary>
/// <remarks>
/// The store is the ensemble folder that <c>train-ensemble</c> writes (training needs TorchSharp, which Core does not
/// reference): <c>ensemble.json</c>, the member model folders <c>member-NN/</c>, <c>source.json</c> and <c>method.json</c>.
/// </remarks>
public sealed class EnsembleMethod : IAttributionMethod
{
    /// <summary>The name of the method in the CLI and in method.json.</summary>
    public const string MethodName = "ensemble";

    /// <inheritdoc/>
    public string Name => MethodName;

    /// <inheritdoc/>
    public string Summary => "encoded ensemble: the query's diffusion loss under members that left a group out minus under those that saw it (forward passes only)";

    /// <inheritdoc/>
    public IReadOnlyCollection<string> SettingsUsed { get; } = [];

    /// <summary>True: a query's loss is measured under every member with the query's own condition (the members of a
    /// conditional ensemble are trained with each row's label).</summary>
    /// <inheritdoc/>
    public MethodCapabilities Capabilities { get; } = new() { ConditionalModels = true, OwnModels = true };

    /// <summary>Always refuses: an ensemble store is trained, not featurized.</summary>
    /// <exception cref="UserInputException">Always.</exception>
    public void Build(MethodBuildRequest request, CancellationToken cancel = default) =>
        throw new UserInputException("method ensemble trains its own models: build its store with 'train-ensemble --out <folder>' " +
            "(training needs TorchSharp); that folder is the store for 'attribute --store'");

    /// <summary>Opens an ensemble folder; <paramref name="modelDirectory"/> is not used (the members are the models).</summary>
    public IAttributionScorer Open(string storeDirectory, string modelDirectory, SessionSettings session) =>
        EnsembleScorer.Open(storeDirectory, session);

    /// <summary>
    /// The group scores τ_g = mean_{E[m,g]=0} ℓ_m − mean_{E[m,g]=1} ℓ_m from the losses of one query under each member
    /// (Dai &amp; Gifford 2023, arXiv:2306.02174).
    /// </summary>
    /// <param name="losses">ℓ_m(q), M values.</param>
    /// <param name="design">The encoding.</param>
    /// <param name="destination">G scores.</param>
    public static void GroupScores(ReadOnlySpan<double> losses, EnsembleDesign design, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(design);
        if (losses.Length != design.Members || destination.Length != design.Groups)
        {
            throw new ArgumentException($"ensemble of {design.Members} members and {design.Groups} groups: got {losses.Length} losses and room for {destination.Length} scores");
        }
        for (int g = 0; g < design.Groups; g++)
        {
            double seen = 0, unseen = 0;
            int seenCount = 0;
            for (int m = 0; m < losses.Length; m++)
            {
                if (design.Sees(m, g))
                {
                    seen += losses[m];
                    seenCount++;
                }
                else
                {
                    unseen += losses[m];
                }
            }
            destination[g] = (float)(unseen / (losses.Length - seenCount) - seen / seenCount);
        }
    }

    /// <summary>Every row's score for each query from the losses <c>queries × M</c> (query-major): its group's score.</summary>
    public static float[] RowScores(ReadOnlySpan<double> losses, int queries, EnsembleDesign design)
    {
        ArgumentNullException.ThrowIfNull(design);
        int m = design.Members;
        if (losses.Length != (long)queries * m)
        {
            throw new ArgumentException($"{queries} queries × {m} members need {(long)queries * m} losses, got {losses.Length}");
        }
        var groups = new float[design.Groups];
        var scores = new float[checked(queries * design.Rows)];
        for (int q = 0; q < queries; q++)
        {
            GroupScores(losses.Slice(q * m, m), design, groups);
            var row = scores.AsSpan(q * design.Rows, design.Rows);
            for (int i = 0; i < row.Length; i++)
            {
                row[i] = groups[design.GroupOfRow[i]];
            }
        }
        return scores;
    }
}

/// <summary>
/// An ensemble folder opened for queries: one ONNX Runtime session per member; a query costs M × pairs forward
/// evaluations (Dai &amp; Gifford 2023, arXiv:2306.02174; see <see cref="EnsembleMethod"/>).
/// </summary>
internal sealed class EnsembleScorer : IAttributionScorer
{
    private readonly OnnxDenoiser[] _members;
    private readonly NoiseSchedule[] _schedules;

    private EnsembleScorer(EnsembleDesign design, EnsembleScoring scoring, OnnxDenoiser[] members, NoiseSchedule[] schedules)
    {
        Design = design;
        Scoring = scoring;
        _members = members;
        _schedules = schedules;
    }

    /// <inheritdoc/>
    public string Method => EnsembleMethod.MethodName;

    /// <inheritdoc/>
    public long Rows => Design.Rows;

    /// <summary>The groups of the rows and the encoding matrix (ensemble.json).</summary>
    public EnsembleDesign Design { get; }

    /// <summary>The plan at which a query's diffusion loss is measured under every member (method.json).</summary>
    public EnsembleScoring Scoring { get; }

    /// <summary>Opens a complete ensemble folder (its method.json written).</summary>
    /// <exception cref="UserInputException">The folder is not a complete ensemble store, or its files disagree.</exception>
    /// <exception cref="ModelFileException">A member folder is missing or damaged.</exception>
    public static EnsembleScorer Open(string storeDirectory, SessionSettings session)
    {
        ArgumentNullException.ThrowIfNull(storeDirectory);
        var manifest = MethodManifest.TryLoad(storeDirectory)
            ?? throw new UserInputException($"{storeDirectory}: no {StoreFiles.Method}: the ensemble is not complete (rerun the same 'train-ensemble' command to finish it)");
        if (manifest.Method != EnsembleMethod.MethodName)
        {
            throw new UserInputException($"{Path.Combine(storeDirectory, StoreFiles.Method)}: field 'method' is '{manifest.Method}', not 'ensemble'");
        }
        var scoring = manifest.SettingsAs<EnsembleScoring>(storeDirectory);
        var design = EnsembleDesign.Load(storeDirectory);
        if (scoring.Members != design.Members)
        {
            throw new UserInputException($"{Path.Combine(storeDirectory, StoreFiles.Method)}: field 'settings.members' is {scoring.Members}; {StoreFiles.Ensemble} has {design.Members}");
        }
        var members = new List<OnnxDenoiser>();
        var schedules = new NoiseSchedule[design.Members];
        ConditionSpec? first = null;
        try
        {
            for (int m = 0; m < design.Members; m++)
            {
                var dir = ModelDirectory.Open(Path.Combine(storeDirectory, EnsembleDesign.MemberFolder(m)));
                schedules[m] = dir.CreateSchedule();
                scoring.Plan.Validate(schedules[m]);
                members.Add(dir.OpenDenoiser(session));
                if (members[m].Channels != members[0].Channels || members[m].ImageSize != members[0].ImageSize)
                {
                    throw new ModelFileException($"{dir.Path}: {members[m].Channels}×{members[m].ImageSize}² images, member 0 takes {members[0].Channels}×{members[0].ImageSize}²");
                }
                var condition = dir.Metadata.Condition;
                first = m == 0 ? condition : first;
                if ((condition?.Kind, condition?.Input, condition?.Classes, condition?.NullLabel) != (first?.Kind, first?.Input, first?.Classes, first?.NullLabel))
                {
                    throw new ModelFileException($"{dir.Path}: its condition differs from member 0's; every member of an ensemble takes the same condition");
                }
            }
        }
        catch
        {
            members.ForEach(d => d.Dispose());
            throw;
        }
        return new EnsembleScorer(design, scoring, members.ToArray(), schedules);
    }

    /// <summary>ℓ_m(q) for every query and member: <c>queries × M</c> values, query-major.</summary>
    public double[] Losses(IReadOnlyList<AttributionQuery> queries, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var images = TrakMethod.Images(queries);
        var conditions = TrakMethod.Conditions(queries);
        int m = _members.Length;
        var losses = new double[queries.Count * m];
        for (int k = 0; k < m; k++)
        {
            cancel.ThrowIfCancellationRequested();
            var l = DiffusionLoss.Measure(_members[k], _schedules[k], Scoring.Plan, images, queries.Count, Scoring.BatchSize, conditions);
            for (int q = 0; q < queries.Count; q++)
            {
                losses[q * m + k] = l[q];
            }
        }
        return losses;
    }

    /// <inheritdoc/>
    public float[] Scores(IReadOnlyList<AttributionQuery> queries, CancellationToken cancel = default) =>
        EnsembleMethod.RowScores(Losses(queries, cancel), queries.Count, Design);

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var d in _members)
        {
            d.Dispose();
        }
    }
}
