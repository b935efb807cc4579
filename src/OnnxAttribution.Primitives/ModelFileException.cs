namespace OnnxAttribution.Primitives;

/// <summary>A model directory or file that is missing, damaged or inconsistent.</summary>
public sealed class ModelFileException : AttributionException
{
    /// <summary>Creates the exception with its message.</summary>
    public ModelFileException(string message) : base(message) { }
    /// <summary>Creates the exception with its message and the exception that caused it.</summary>
    public ModelFileException(string message, Exception inner) : base(message, inner) { }
}
