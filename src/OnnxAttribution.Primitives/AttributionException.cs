namespace OnnxAttribution.Primitives;

/// <summary>The base of every error the engine raises on purpose.</summary>
public class AttributionException : Exception
{
    /// <summary>Creates the exception with its message.</summary>
    public AttributionException(string message) : base(message) { }
    /// <summary>Creates the exception with its message and the exception that caused it.</summary>
    public AttributionException(string message, Exception inner) : base(message, inner) { }
}
