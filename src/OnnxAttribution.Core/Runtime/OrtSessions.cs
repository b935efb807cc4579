using Microsoft.ML.OnnxRuntime;

namespace OnnxAttribution.Core.Runtime;

/// <summary>Creates ONNX Runtime sessions with this project's settings and error wrapping.</summary>
public static class OrtSessions
{
    /// <summary>Session options for <paramref name="settings"/>: full graph optimisation, the given threads and device.</summary>
    /// <exception cref="UserInputException">CUDA was asked for but this ONNX Runtime build has no CUDA provider, or it failed to start.</exception>
    public static SessionOptions CreateOptions(SessionSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentOutOfRangeException.ThrowIfNegative(settings.IntraOpThreads);
        var options = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            IntraOpNumThreads = settings.IntraOpThreads,
        };
        // ONNX Runtime's own per-node profile (a JSON file per session, named from this prefix), for finding where time goes.
        if (Environment.GetEnvironmentVariable("ONNX_ATTRIBUTION_ORT_PROFILE") is { Length: > 0 } profile)
        {
            options.ProfileOutputPathPrefix = profile; // read when profiling is switched on, so first
            options.EnableProfiling = true;
        }
        if (settings.Device == ExecutionDevice.Cuda)
        {
            try
            {
                options.AppendExecutionProvider_CUDA(settings.CudaDeviceId);
            }
            catch (Exception e) when (e is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException or InvalidOperationException)
            {
                options.Dispose();
                throw new UserInputException(
                    $"--device cuda: the CUDA execution provider is not available ({e.Message}). " +
                    "It needs the GPU build of ONNX Runtime (the NuGet package Microsoft.ML.OnnxRuntime.Gpu instead of Microsoft.ML.OnnxRuntime), " +
                    "CUDA and cuDNN libraries, and an NVIDIA GPU; use --device cpu otherwise", e);
            }
        }
        return options;
    }

    /// <summary>Opens a session on <paramref name="modelPath"/>.</summary>
    /// <exception cref="ModelFileException">The file is missing or ONNX Runtime cannot load it (the message names the file).</exception>
    /// <exception cref="UserInputException">The device cannot be used.</exception>
    public static InferenceSession Open(string modelPath, SessionSettings settings)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        if (!File.Exists(modelPath))
        {
            throw new ModelFileException($"ONNX model not found: {modelPath}");
        }
        using var options = CreateOptions(settings);
        try
        {
            return new InferenceSession(modelPath, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new ModelFileException($"{modelPath}: ONNX Runtime cannot load the model ({e.Message})", e);
        }
    }
}
