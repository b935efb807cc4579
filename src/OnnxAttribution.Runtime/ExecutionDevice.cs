namespace OnnxAttribution.Runtime;

/// <summary>Where ONNX Runtime runs a model.</summary>
public enum ExecutionDevice
{
    /// <summary>The CPU execution provider (always available).</summary>
    Cpu,

    /// <summary>The CUDA execution provider; needs the Microsoft.ML.OnnxRuntime.Gpu package and an NVIDIA GPU.</summary>
    Cuda,
}
