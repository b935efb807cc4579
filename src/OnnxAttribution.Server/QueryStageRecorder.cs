using System.Collections.Concurrent;
using System.Diagnostics;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Server;

/// <summary>
/// Collects the engine's query spans (<see cref="QueryTrace"/>) that run under one scoring call of the server: where
/// the scorer's time went (features, solve, scan…), for <see cref="Timings.StagesMs"/>.
/// </summary>
internal static class QueryStageRecorder
{
    private const string ServerSourceName = "OnnxAttribution.Server";
    private const string StagesProperty = "onnx-attribution.stages";
    private static readonly ActivitySource ServerSource = new(ServerSourceName);
    private static readonly Lazy<ActivityListener> Listener = new(Listen);

    /// <summary>Starts a server span; the engine's spans started under it (same thread) add their time to its stages.</summary>
    public static Recording Begin()
    {
        _ = Listener.Value;
        var stages = new ConcurrentDictionary<string, double>(StringComparer.Ordinal);
        var span = ServerSource.StartActivity("score");
        span?.SetCustomProperty(StagesProperty, stages);
        return new Recording(span, stages);
    }

    private static ActivityListener Listen()
    {
        var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name is QueryTrace.SourceName or ServerSourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
            ActivityStopped = span =>
            {
                if (span.Source.Name == QueryTrace.SourceName && span.Parent?.GetCustomProperty(StagesProperty) is ConcurrentDictionary<string, double> stages)
                {
                    double ms = span.Duration.TotalMilliseconds;
                    stages.AddOrUpdate(span.OperationName, ms, (_, sum) => sum + ms);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        return listener;
    }

    /// <summary>One scoring call's stages; dispose it when the call returns.</summary>
    public sealed class Recording(Activity? span, ConcurrentDictionary<string, double> stages) : IDisposable
    {
        /// <summary>Milliseconds by stage, rounded to 0.01 ms; empty for methods that report no stages.</summary>
        public IReadOnlyDictionary<string, double> Stages =>
            stages.OrderBy(s => s.Key, StringComparer.Ordinal).ToDictionary(s => s.Key, s => Math.Round(s.Value, 2), StringComparer.Ordinal);

        public void Dispose() => span?.Dispose();
    }
}
