namespace OnnxAttribution.Runtime;

/// <summary>What scores a store's rows against the preconditioned queries.</summary>
public enum ScanEngine
{
    /// <summary>The SIMD scan on CPU, or the ONNX Runtime scan when the device is CUDA.</summary>
    Auto,

    /// <summary>The project's SIMD scan of the memory-mapped store (<see cref="Store.FeatureStore.TopK"/>), on the CPU.</summary>
    Simd,

    /// <summary>
    /// A Gemm + TopK graph that ONNX Runtime runs on the session's device (<see cref="OrtStoreScan"/>): on CUDA the rows
    /// are copied into GPU memory once; on CPU it reads the mapped rows in place.
    /// </summary>
    Onnx,
}
