namespace OnnxAttribution.Primitives;

/// <summary>Bad input from the user: an option value, a data file, an image.</summary>
public class UserInputException : AttributionException
{
    /// <summary>Creates the exception with its message.</summary>
    public UserInputException(string message) : base(message) { }
    /// <summary>Creates the exception with its message and the exception that caused it.</summary>
    public UserInputException(string message, Exception inner) : base(message, inner) { }
}
