using System.Globalization;
using OnnxAttribution.Primitives;
using OnnxAttribution.Store;

namespace OnnxAttribution.Runtime.Projection;

/// <summary>
/// The one description of a projection: kind, entry distribution, requested k and seed. It is what featurization is
/// given, what a query rebuilds, and — through <see cref="ToSpec"/> and <see cref="FromSpec"/>, the only two places that
/// know the format — what meta.json's <c>projector</c> field holds.
/// </summary>
/// <param name="Kind">Dense or factored.</param>
/// <param name="Distribution">The entries' distribution.</param>
/// <param name="Dim">The k asked for (the factored projector may produce fewer: layers × side²).</param>
/// <param name="Seed">The projection's seed.</param>
public sealed record ProjectionSettings(ProjectorKind Kind, ProjectionKind Distribution, int Dim, long Seed)
{
    private const string DistributionKey = "distribution";
    private const string RequestedDimKey = "requestedDim";

    /// <summary>The dense projector P (p × k) these settings give for gradients of <paramref name="inputDim"/> values.</summary>
    public DenseProjector DenseProjector(long inputDim) => new(inputDim, Dim, Distribution, unchecked((ulong)Seed));

    /// <summary>meta.json's <c>projector</c> for features of <paramref name="producedDim"/> columns made with these settings.</summary>
    public ProjectorSpec ToSpec(int producedDim) => new(Kind == ProjectorKind.Dense ? "dense" : "factored", Seed, producedDim)
    {
        Settings = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            [DistributionKey] = Distribution.ToString().ToLowerInvariant(),
            [RequestedDimKey] = Dim.ToString(CultureInfo.InvariantCulture),
        },
    };

    /// <summary>The settings a meta.json <c>projector</c> records; stores from before a setting existed read its old default.</summary>
    /// <exception cref="AttributionException">An unknown kind or distribution, or a requested k that is not a positive integer
    /// (the message names the field, after "meta.json: ").</exception>
    public static ProjectionSettings FromSpec(ProjectorSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var kind = spec.Kind switch
        {
            "dense" => ProjectorKind.Dense,
            "factored" => ProjectorKind.Factored,
            _ => throw new AttributionException($"meta.json: field 'projector.kind' is '{spec.Kind}'; known: dense, factored"),
        };
        var distribution = !spec.Settings.TryGetValue(DistributionKey, out var d) ? ProjectionKind.Rademacher : d switch
        {
            "rademacher" => ProjectionKind.Rademacher,
            "gaussian" => ProjectionKind.Gaussian,
            _ => throw new AttributionException($"meta.json: field 'projector.settings.{DistributionKey}' is '{d}'; known: rademacher, gaussian"),
        };
        int requested = spec.Dim;
        if (spec.Settings.TryGetValue(RequestedDimKey, out var r)
            && !(int.TryParse(r, NumberStyles.None, CultureInfo.InvariantCulture, out requested) && requested > 0))
        {
            throw new AttributionException($"meta.json: field 'projector.settings.{RequestedDimKey}' is '{r}'; expected a positive integer");
        }
        return new ProjectionSettings(kind, distribution, requested, spec.Seed);
    }
}
