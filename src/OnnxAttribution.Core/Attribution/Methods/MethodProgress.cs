using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Attribution.Methods;

/// <summary>Progress of a method's build: which stage, and how far along it is.</summary>
public readonly record struct MethodProgress(string Stage, long Done, long Total)
{
    /// <summary>A (done, total) progress of one stage that reports to <paramref name="progress"/>; null when it is null.</summary>
    public static IProgress<(long Done, long Total)>? Of(IProgress<MethodProgress>? progress, string stage) =>
        progress is null ? null : new SyncProgress<(long Done, long Total)>(p => progress.Report(new MethodProgress(stage, p.Done, p.Total)));
}
