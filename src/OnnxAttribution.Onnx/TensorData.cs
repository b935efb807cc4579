using System.Runtime.InteropServices;
using Google.Protobuf;
using OnnxAttribution.Onnx.Proto;

namespace OnnxAttribution.Onnx;

/// <summary>Reads and writes the payload of ONNX <see cref="TensorProto"/>s (little-endian raw data or typed fields).</summary>
public static class TensorData
{
    /// <summary>ONNX element type code of float32.</summary>
    public const int Float = (int)TensorProto.Types.DataType.Float;
    /// <summary>ONNX element type code of int64.</summary>
    public const int Int64 = (int)TensorProto.Types.DataType.Int64;
    /// <summary>ONNX element type code of float64.</summary>
    public const int Double = (int)TensorProto.Types.DataType.Double;

    /// <summary>A float32 tensor named <paramref name="name"/> of shape <paramref name="dims"/> holding <paramref name="data"/> as raw little-endian bytes.</summary>
    /// <exception cref="ArgumentException">The number of values is not the product of the dimensions.</exception>
    public static TensorProto FromFloats(string name, ReadOnlySpan<float> data, params long[] dims)
    {
        CheckCount(name, data.Length, dims);
        var t = new TensorProto { Name = name, DataType = Float, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(data)) };
        t.Dims.AddRange(dims);
        return t;
    }

    /// <summary>An int64 tensor named <paramref name="name"/> of shape <paramref name="dims"/> holding <paramref name="data"/> as raw little-endian bytes.</summary>
    /// <exception cref="ArgumentException">The number of values is not the product of the dimensions.</exception>
    public static TensorProto FromInt64s(string name, ReadOnlySpan<long> data, params long[] dims)
    {
        CheckCount(name, data.Length, dims);
        var t = new TensorProto { Name = name, DataType = Int64, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(data)) };
        t.Dims.AddRange(dims);
        return t;
    }

    /// <summary>The number of elements of a tensor of shape <paramref name="dims"/> (1 for a scalar); overflow throws.</summary>
    public static long ElementCount(IEnumerable<long> dims)
    {
        long n = 1;
        foreach (var d in dims)
        {
            n = checked(n * d);
        }
        return n;
    }

    /// <summary>The tensor's values as float32 (from FLOAT or DOUBLE storage).</summary>
    /// <exception cref="OnnxGraphException">The tensor is of another element type or its payload has the wrong size.</exception>
    public static float[] ToFloats(TensorProto t)
    {
        long n = ElementCount(t.Dims);
        float[] result;
        if (t.DataType == Float)
        {
            result = !t.RawData.IsEmpty ? MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray() : t.FloatData.ToArray();
        }
        else if (t.DataType == Double)
        {
            var d = !t.RawData.IsEmpty ? MemoryMarshal.Cast<byte, double>(t.RawData.Span).ToArray() : t.DoubleData.ToArray();
            result = Array.ConvertAll(d, x => (float)x);
        }
        else
        {
            throw new OnnxGraphException($"tensor '{t.Name}': expected float data, found element type {t.DataType}");
        }
        if (result.LongLength != n)
        {
            throw new OnnxGraphException($"tensor '{t.Name}': dims [{string.Join(",", t.Dims)}] need {n} values, found {result.Length}");
        }
        return result;
    }

    /// <summary>The tensor's values as int64 (from INT64 or INT32 storage).</summary>
    public static long[] ToInt64s(TensorProto t)
    {
        long[] result;
        if (t.DataType == Int64)
        {
            result = !t.RawData.IsEmpty ? MemoryMarshal.Cast<byte, long>(t.RawData.Span).ToArray() : t.Int64Data.ToArray();
        }
        else if (t.DataType == (int)TensorProto.Types.DataType.Int32)
        {
            var d = !t.RawData.IsEmpty ? MemoryMarshal.Cast<byte, int>(t.RawData.Span).ToArray() : t.Int32Data.ToArray();
            result = Array.ConvertAll(d, x => (long)x);
        }
        else
        {
            throw new OnnxGraphException($"tensor '{t.Name}': expected int64 data, found element type {t.DataType}");
        }
        if (result.LongLength != ElementCount(t.Dims))
        {
            throw new OnnxGraphException($"tensor '{t.Name}': dims [{string.Join(",", t.Dims)}] need {ElementCount(t.Dims)} values, found {result.Length}");
        }
        return result;
    }

    private static void CheckCount(string name, int count, long[] dims)
    {
        if (ElementCount(dims) != count)
        {
            throw new ArgumentException($"tensor '{name}': dims [{string.Join(",", dims)}] need {ElementCount(dims)} values, got {count}");
        }
    }
}
