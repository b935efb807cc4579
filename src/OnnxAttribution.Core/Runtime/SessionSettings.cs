namespace OnnxAttribution.Core.Runtime;

/// <summary>How ONNX Runtime sessions are created.</summary>
/// <param name="Device">CPU or CUDA.</param>
/// <param name="IntraOpThreads">Threads inside one operator; 0 lets ONNX Runtime choose (one per physical core).</param>
/// <param name="CudaDeviceId">The GPU ordinal for <see cref="ExecutionDevice.Cuda"/>.</param>
public sealed record SessionSettings(ExecutionDevice Device = ExecutionDevice.Cpu, int IntraOpThreads = 0, int CudaDeviceId = 0)
{
    /// <summary>CPU, ONNX Runtime's default thread count.</summary>
    public static SessionSettings Default { get; } = new();
}
