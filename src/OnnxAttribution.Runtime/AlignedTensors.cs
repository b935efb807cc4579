using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace OnnxAttribution.Runtime;

/// <summary>
/// Input tensors in memory ONNX Runtime allocated itself (64-byte aligned). Some CPU kernels take different code paths
/// for differently aligned buffers, and managed arrays land at varying alignments, which made the same inputs give
/// results differing in the last bit from run to run. Copying into aligned buffers makes every run bit-identical.
/// </summary>
internal static class AlignedTensors
{
    public static OrtValue Float(ReadOnlySpan<float> data, long[] shape)
    {
        var value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float, shape);
        data.CopyTo(value.GetTensorMutableDataAsSpan<float>());
        return value;
    }

    public static OrtValue Int64(ReadOnlySpan<long> data, long[] shape)
    {
        var value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Int64, shape);
        data.CopyTo(value.GetTensorMutableDataAsSpan<long>());
        return value;
    }
}
