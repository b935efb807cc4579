using CommandLine;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Cli.Verbs;

/// <summary>The ONNX Runtime options of every verb that runs a model (--threads, --device): declared once, inherited.</summary>
internal abstract class SessionVerbOptions
{
    [Option("threads", Default = 0, HelpText = "ONNX Runtime intra-op threads; 0 for its default. With 0 on the CPU, featurizing runs one example per core " +
        "at once, each on one thread (the same bits, 1.4-1.8x the throughput); a number runs one example at a time on that many threads.")]
    public int Threads { get; set; }

    [Option("device", Default = ExecutionDevice.Cpu, HelpText = "cpu or cuda (cuda needs the build with -p:OrtFlavor=cuda: ONNX Runtime's GPU package, CUDA 13, cuDNN 9).")]
    public ExecutionDevice Device { get; set; }

    [Option("scan", Default = ScanEngine.Auto, HelpText = "what scans the store for a query's best rows: auto (simd on cpu, onnx on cuda), " +
        "simd (the SIMD scan on the CPU), or onnx (a Gemm + TopK graph ONNX Runtime runs on --device; on cuda the rows stay in GPU memory).")]
    public ScanEngine Scan { get; set; }

    [Option("reduce", Default = GradientReduction.Auto, HelpText = "where an example's per-pair gradients are summed and projected: auto " +
        "(host on cpu, device on cuda), host (the gradients come back; the stores' reference bits), or device (inside ONNX Runtime's graph: " +
        "only k values per example come back; P held in device memory; agrees with host to float32 rounding).")]
    public GradientReduction Reduce { get; set; }

    [Option("exact-scan", HelpText = "scan a store's exact rows even where it has an 8-bit copy ('quantize'); by default the copy is scanned " +
        "and its candidates re-scored from the exact rows, which gives the same rows and scores from fewer bytes.")]
    public bool ExactScan { get; set; }

    /// <summary>The session settings these options ask for.</summary>
    public SessionSettings Session => new(Device, Threads) { Scan = Scan, Reduction = Reduce, ExactScan = ExactScan };

    /// <summary>Range checks of the session options, for the verb's Validate.</summary>
    protected void ValidateSession() => OptionChecks.AtLeast(Threads, 0, "--threads");
}
