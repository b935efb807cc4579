using OnnxAttribution.Primitives;

namespace OnnxAttribution.Store;

/// <summary>
/// A feature-store file that is missing, damaged, of an unknown version, or that does not match the settings it is
/// opened with. The message names the file, the field, what was expected and what was found.
/// </summary>
public sealed class StoreFormatException : AttributionException
{
    /// <summary>Creates the exception with its message.</summary>
    public StoreFormatException(string message) : base(message) { }
    /// <summary>Creates the exception with its message and the exception that caused it.</summary>
    public StoreFormatException(string message, Exception inner) : base(message, inner) { }
}
