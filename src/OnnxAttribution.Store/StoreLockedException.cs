using OnnxAttribution.Primitives;

namespace OnnxAttribution.Store;

/// <summary>A store folder that another writer holds (<see cref="StoreLock"/>).</summary>
public sealed class StoreLockedException : AttributionException
{
    /// <summary>Creates the exception with its message and the exception that caused it.</summary>
    public StoreLockedException(string message, Exception inner) : base(message, inner) { }
}
