namespace OnnxAttribution.Core;

/// <summary>The base of every error the engine raises on purpose.</summary>
public class AttributionException : Exception
{
    /// <summary>Creates the exception with its message.</summary>
    public AttributionException(string message) : base(message) { }
    /// <summary>Creates the exception with its message and the exception that caused it.</summary>
    public AttributionException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A model directory or file that is missing, damaged or inconsistent.</summary>
public sealed class ModelFileException : AttributionException
{
    /// <summary>Creates the exception with its message.</summary>
    public ModelFileException(string message) : base(message) { }
    /// <summary>Creates the exception with its message and the exception that caused it.</summary>
    public ModelFileException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A model that breaks the gradient-graph contract (inputs, outputs, shapes).</summary>
public sealed class GraphContractException : AttributionException
{
    /// <summary>Creates the exception with its message.</summary>
    public GraphContractException(string message) : base(message) { }
}

/// <summary>Bad input from the user: an option value, a data file, an image.</summary>
public sealed class UserInputException : AttributionException
{
    /// <summary>Creates the exception with its message.</summary>
    public UserInputException(string message) : base(message) { }
    /// <summary>Creates the exception with its message and the exception that caused it.</summary>
    public UserInputException(string message, Exception inner) : base(message, inner) { }
}
