namespace OnnxAttribution.Onnx;

/// <summary>A graph uses an operator, attribute or shape that differentiation does not support.</summary>
public sealed class UnsupportedOperatorException : OnnxGraphException
{
    /// <summary>Creates the exception for node <paramref name="nodeName"/> of type <paramref name="opType"/>; the message is "node 'name' (op): detail".</summary>
    public UnsupportedOperatorException(string opType, string nodeName, string detail)
        : base($"node '{nodeName}' ({opType}): {detail}")
    {
        OpType = opType;
        NodeName = nodeName;
    }

    /// <summary>The ONNX operator type, e.g. <c>Conv</c>.</summary>
    public string OpType { get; }

    /// <summary>The node's name in the graph (or its first output when the node has no name).</summary>
    public string NodeName { get; }
}
