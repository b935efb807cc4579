namespace OnnxAttribution.Runtime;

/// <summary>How ONNX Runtime sessions are created, and how queries are measured.</summary>
/// <param name="Device">CPU or CUDA.</param>
/// <param name="IntraOpThreads">Threads inside one operator; 0 lets ONNX Runtime choose (one per physical core).</param>
/// <param name="CudaDeviceId">The GPU ordinal for <see cref="ExecutionDevice.Cuda"/>.</param>
public sealed record SessionSettings(ExecutionDevice Device = ExecutionDevice.Cpu, int IntraOpThreads = 0, int CudaDeviceId = 0)
{
    /// <summary>CPU, ONNX Runtime's default thread count.</summary>
    public static SessionSettings Default { get; } = new();

    /// <summary>
    /// The fast query setting of the TRAK-family stores (trak, d-trak, das): a query is measured at this many of the store's
    /// K timesteps (OnnxAttribution.Core's <c>FeaturizationPlan.ForQueries</c>); 0 (the default) for all K. Fewer gradient passes
    /// per query, at a cost in attribution quality measured in docs/results/performance.md.
    /// </summary>
    public int QueryTimesteps { get; init; }

    /// <summary>What scans the store for a query's best rows (<see cref="ScanEngine"/>); Auto: the SIMD scan on CPU, ONNX Runtime's on CUDA.</summary>
    public ScanEngine Scan { get; init; }

    /// <summary>The scan engine <see cref="Scan"/> resolves to on <see cref="Device"/>.</summary>
    public ScanEngine ResolvedScan => Scan != ScanEngine.Auto ? Scan : Device == ExecutionDevice.Cuda ? ScanEngine.Onnx : ScanEngine.Simd;

    /// <summary>
    /// True to scan a store's exact rows even where it holds an 8-bit copy (<see cref="Store.StoreQuantizer"/>); false (the default)
    /// scans the copy and re-ranks its candidates exactly. Both give the same rows and scores; only the bytes read differ.
    /// Read by the TRAK-family scorers (trak, d-trak, das, which open their store with these settings).
    /// </summary>
    public bool ExactScan { get; init; }

    /// <summary>Where featurization and query features sum and project the pairs' gradients (<see cref="GradientReduction"/>).</summary>
    public GradientReduction Reduction { get; init; }

    /// <summary>The reduction <see cref="Reduction"/> resolves to on <see cref="Device"/>: in the graph on CUDA, on the host otherwise.</summary>
    public GradientReduction ResolvedReduction =>
        Reduction != GradientReduction.Auto ? Reduction : Device == ExecutionDevice.Cuda ? GradientReduction.Device : GradientReduction.Host;
}
