namespace OnnxAttribution.Primitives;

/// <summary>A model that breaks the gradient-graph contract (inputs, outputs, shapes).</summary>
public sealed class GraphContractException : AttributionException
{
    /// <summary>Creates the exception with its message.</summary>
    public GraphContractException(string message) : base(message) { }
}
