using CommandLine;
using OnnxAttribution.Core.Runtime;

namespace OnnxAttribution.Cli.Verbs;

/// <summary>The ONNX Runtime options of every verb that runs a model (--threads, --device): declared once, inherited.</summary>
internal abstract class SessionVerbOptions
{
    [Option("threads", Default = 0, HelpText = "ONNX Runtime intra-op threads; 0 for its default.")]
    public int Threads { get; set; }

    [Option("device", Default = ExecutionDevice.Cpu, HelpText = "cpu or cuda (cuda needs the build with -p:OrtFlavor=cuda: ONNX Runtime's GPU package, CUDA 13, cuDNN 9).")]
    public ExecutionDevice Device { get; set; }

    /// <summary>The session settings these options ask for.</summary>
    public SessionSettings Session => new(Device, Threads);

    /// <summary>Range checks of the session options, for the verb's Validate.</summary>
    protected void ValidateSession() => OptionChecks.AtLeast(Threads, 0, "--threads");
}
