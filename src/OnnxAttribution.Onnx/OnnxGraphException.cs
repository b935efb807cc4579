namespace OnnxAttribution.Onnx;

/// <summary>The base of every error this project raises about ONNX graphs.</summary>
public class OnnxGraphException : Exception
{
    /// <summary>Creates the exception with its message.</summary>
    public OnnxGraphException(string message) : base(message) { }

    /// <summary>Creates the exception with its message and the exception that caused it.</summary>
    public OnnxGraphException(string message, Exception inner) : base(message, inner) { }
}
