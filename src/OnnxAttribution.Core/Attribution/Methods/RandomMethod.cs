using System.Text;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>
/// The random baseline (docs/methods.md, "Baselines every table must carry"): τ(q)ᵢ uniform on [-1, 1], independent of the query's
/// content, drawn from <see cref="CounterRng"/> keyed by (<see cref="MethodSettings.Seed"/>, the query's stream), element i
/// for row i. Any LDS or counterfactual result a method reports must beat it.
/// </summary>
/// <remarks>
/// The stream is the FNV-1a 64-bit hash of the query's label (UTF-8), or the query's index in the batch when the label is empty,
/// so the same query gets the same scores in any batch and on any machine, and a rerun agrees. The store holds only
/// source.json and method.json (seed, N, the dataset's fingerprint).
/// </remarks>
internal sealed class RandomMethod : AttributionMethod<RandomSettings>
{
    /// <inheritdoc/>
    public override string Name => "random";

    /// <inheritdoc/>
    public override MethodCapabilities Capabilities { get; } = new() { ConditionalModels = true };

    /// <inheritdoc/>
    public override string Summary => "seeded uniform scores, independent of the query (the floor every method must beat)";

    /// <inheritdoc/>
    protected override void Build(MethodBuildRequest request, RandomSettings settings, CancellationToken cancel) =>
        MethodManifest.SaveRecordOnly(request, Name, new RandomStoreSettings(settings.Seed, request.Data.Count, request.Data.Fingerprint));

    /// <inheritdoc/>
    public override IAttributionScorer Open(string storeDirectory, string modelDirectory, SessionSettings session)
    {
        var settings = MethodManifest.Require(storeDirectory, Name).SettingsAs<RandomStoreSettings>(storeDirectory);
        return new Scorer(settings.Seed, settings.Rows);
    }

    /// <summary>The RNG stream of a query: FNV-1a 64 of its label, or <paramref name="index"/> when the label is empty.</summary>
    public static long QueryStream(string label, int index)
    {
        ArgumentNullException.ThrowIfNull(label);
        if (label.Length == 0)
        {
            return index;
        }
        ulong hash = 14695981039346656037UL;
        foreach (byte b in Encoding.UTF8.GetBytes(label))
        {
            hash = unchecked((hash ^ b) * 1099511628211UL);
        }
        return unchecked((long)hash);
    }

    /// <summary>method.json settings of a random store.</summary>
    private sealed record RandomStoreSettings(long Seed, long Rows, string DatasetFingerprint);

    private sealed class Scorer(long seed, long rows) : IAttributionScorer
    {
        public string Method => "random";

        public long Rows => rows;

        public float[] Scores(IReadOnlyList<AttributionQuery> queries, CancellationToken cancel = default)
        {
            ArgumentNullException.ThrowIfNull(queries);
            int n = checked((int)rows);
            var scores = new float[(long)queries.Count * n];
            var u = new double[n];
            for (int q = 0; q < queries.Count; q++)
            {
                new CounterRng(seed, QueryStream(queries[q].Label, q)).FillUniform(u);
                for (int i = 0; i < n; i++)
                {
                    scores[((long)q * n) + i] = (float)((2 * u[i]) - 1);
                }
            }
            return scores;
        }

        public void Dispose()
        {
        }
    }
}

/// <summary>The settings the random baseline reads: its seed.</summary>
internal sealed record RandomSettings
{
    /// <inheritdoc cref="MethodSettings.Seed"/>
    public long Seed { get; init; }
}
