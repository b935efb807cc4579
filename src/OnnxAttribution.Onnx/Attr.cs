using Google.Protobuf;
using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx;

/// <summary>Factories and readers for ONNX node attributes.</summary>
public static class Attr
{
    /// <summary>An integer attribute.</summary>
    public static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    /// <summary>A float attribute.</summary>
    public static AttributeProto Float(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    /// <summary>A string attribute (stored as UTF-8 bytes).</summary>
    public static AttributeProto String(string name, string value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    /// <summary>An attribute holding a list of integers.</summary>
    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    /// <summary>An attribute holding a list of floats.</summary>
    public static AttributeProto Floats(string name, params float[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Floats };
        a.Floats.AddRange(values);
        return a;
    }

    /// <summary>A tensor attribute (a Constant node's value).</summary>
    public static AttributeProto Tensor(string name, TensorProto value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Tensor, T = value };

    /// <summary>Finds an attribute by name, or null.</summary>
    public static AttributeProto? Find(NodeProto node, string name)
    {
        foreach (var a in node.Attribute)
        {
            if (a.Name == name)
            {
                return a;
            }
        }
        return null;
    }

    /// <summary>The integer attribute <paramref name="name"/> of <paramref name="node"/>, or <paramref name="fallback"/> when absent.</summary>
    public static long GetInt(NodeProto node, string name, long fallback) => Find(node, name)?.I ?? fallback;

    /// <summary>The float attribute <paramref name="name"/> of <paramref name="node"/>, or <paramref name="fallback"/> when absent.</summary>
    public static float GetFloat(NodeProto node, string name, float fallback) => Find(node, name)?.F ?? fallback;

    /// <summary>The string attribute <paramref name="name"/> of <paramref name="node"/> decoded from UTF-8, or <paramref name="fallback"/> when absent.</summary>
    public static string GetString(NodeProto node, string name, string fallback) =>
        Find(node, name) is { } a ? a.S.ToStringUtf8() : fallback;

    /// <summary>The integer-list attribute <paramref name="name"/> of <paramref name="node"/>, or null when absent.</summary>
    public static long[]? GetInts(NodeProto node, string name) => Find(node, name) is { } a ? a.Ints.ToArray() : null;
}
