using System.Diagnostics;

namespace OnnxAttribution.Runtime;

/// <summary>
/// The stages of answering a query, as <see cref="Activity"/> spans of the source <see cref="SourceName"/>: a listener
/// (the HTTP server's timings, or OpenTelemetry) sees how long each took; without one, starting a span costs a null check.
/// </summary>
public static class QueryTrace
{
    /// <summary>The <see cref="ActivitySource"/> name.</summary>
    public const string SourceName = "OnnxAttribution";

    /// <summary>The query's features φ_q: the model's forward and gradient passes and the projection.</summary>
    public const string Features = "features";

    /// <summary>The solve (ΦᵀΦ + λI)⁻¹ φ_q with the store's factored kernel.</summary>
    public const string Solve = "solve";

    /// <summary>The scan of the store's rows with the top-k selection (one pass: the heap is fed as the rows stream by).</summary>
    public const string Scan = "scan";

    /// <summary>A dual-kernel store's scores: Φφ_q over the rows, then the N×N solve.</summary>
    public const string Dual = "dual";

    /// <summary>The top-k selection over a score matrix computed before (dual stores).</summary>
    public const string TopK = "top-k";

    /// <summary>Where the spans come from.</summary>
    public static ActivitySource Source { get; } = new(SourceName);

    /// <summary>Starts a span of <paramref name="stage"/>, or returns null when nobody listens.</summary>
    public static Activity? Start(string stage) => Source.StartActivity(stage);
}
