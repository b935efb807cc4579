using Microsoft.ML.OnnxRuntime;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Runtime;

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
        // ONNX Runtime's idle threads spin after a run by default, and on two cores they take the time of what the run hands
        // over to: a query's projection and scan ran 1.4-1.7x slower behind them (query p50 34 against 23 ms, 60,000 x 1024
        // float16, QueryBench), while featurization, a run after a run, lost nothing without the spinning (13.3-13.4 s
        // against 13.7-16.3 s for 240 rows x 10 timesteps, whole process).
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        ApplyConfig(options, Environment.GetEnvironmentVariable(ConfigVariable));
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
                RequireCuda();
                options.AppendExecutionProvider_CUDA(settings.CudaDeviceId);
            }
            catch (Exception e) when (e is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException or InvalidOperationException or UserInputException)
            {
                options.Dispose();
                throw e as UserInputException ?? new SettingException("Device", ExecutionDevice.Cuda,
                    $"the CUDA execution provider did not start on GPU {settings.CudaDeviceId} ({e.Message})", ExecutionDevice.Cpu, e);
            }
        }
        return options;
    }

    /// <summary>The environment variable of extra session config entries, for experiments: "key=value;key=value" (ONNX Runtime's keys).</summary>
    public const string ConfigVariable = "ONNX_ATTRIBUTION_ORT_CONFIG";

    /// <summary>Adds the entries of <paramref name="spec"/> ("key=value;…") to <paramref name="options"/>; null or empty adds none.</summary>
    /// <exception cref="UserInputException">An entry is not key=value; the options are disposed.</exception>
    internal static void ApplyConfig(SessionOptions options, string? spec)
    {
        foreach (var entry in (spec ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int eq = entry.IndexOf('=');
            if (eq <= 0)
            {
                options.Dispose();
                throw new UserInputException($"{ConfigVariable}: '{entry}' is not key=value (e.g. session.set_denormal_as_zero=1)");
            }
            options.AddSessionConfigEntry(entry[..eq], entry[(eq + 1)..]);
        }
    }

    /// <summary>Whether this assembly was built against the CUDA flavour of ONNX Runtime (<c>-p:OrtFlavor=cuda</c>).</summary>
#if ORT_CUDA
    public static bool CudaBuild { get; } = true;
#else
    public static bool CudaBuild { get; } = false;
#endif

    /// <summary>
    /// The shared libraries ONNX Runtime 1.32's CUDA provider loads at run time (CUDA 13 and cuDNN 9), by the names the
    /// dynamic loader looks for.
    /// </summary>
    public static IReadOnlyList<string> CudaLibraries { get; } =
        ["libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libcufft.so.12", "libcudnn.so.9"];

    /// <summary>The libraries of <see cref="CudaLibraries"/> that <paramref name="canLoad"/> cannot load, in that order.</summary>
    public static IReadOnlyList<string> MissingLibraries(Func<string, bool> canLoad)
    {
        ArgumentNullException.ThrowIfNull(canLoad);
        return CudaLibraries.Where(name => !canLoad(name)).ToList();
    }

    /// <summary>Refuses CUDA on a CPU build, or where a library the CUDA provider needs cannot be loaded (naming each one).</summary>
    /// <exception cref="UserInputException">CUDA cannot be used here.</exception>
    public static void RequireCuda() => RequireCuda(CudaBuild, CanLoad);

    /// <summary><see cref="RequireCuda()"/> with the build flavour and the loader given (for tests).</summary>
    public static void RequireCuda(bool cudaBuild, Func<string, bool> canLoad)
    {
        if (!cudaBuild)
        {
            throw new SettingException("Device", ExecutionDevice.Cuda,
                "this build uses ONNX Runtime's CPU package; build with -p:OrtFlavor=cuda (the package " +
                "Microsoft.ML.OnnxRuntime.Gpu.Linux, CUDA 13, cuDNN 9) for the CUDA execution provider", ExecutionDevice.Cpu);
        }
        var missing = MissingLibraries(canLoad);
        if (missing.Count > 0)
        {
            throw new SettingException("Device", ExecutionDevice.Cuda,
                $"cannot load {string.Join(", ", missing)}; the CUDA execution provider needs CUDA 13 and cuDNN 9 " +
                "(put their lib folders on LD_LIBRARY_PATH)", ExecutionDevice.Cpu);
        }
    }

    private static bool CanLoad(string name)
    {
        if (!System.Runtime.InteropServices.NativeLibrary.TryLoad(name, out var handle))
        {
            return false;
        }
        System.Runtime.InteropServices.NativeLibrary.Free(handle);
        return true;
    }

    /// <summary>Opens a session on <paramref name="modelPath"/>.</summary>
    /// <exception cref="ModelFileException">The file is missing or ONNX Runtime cannot load it (the message names the file).</exception>
    /// <exception cref="UserInputException">The device cannot be used.</exception>
    public static InferenceSession Open(string modelPath, SessionSettings settings, Models.ConditionSpec? condition = null)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        if (!File.Exists(modelPath))
        {
            throw new ModelFileException($"ONNX model not found: {modelPath}");
        }
        using var options = CreateOptions(settings);
        try
        {
            // A text model's forward graph runs with its caption encoder in front (PromptGraph): the session takes the packed prompt.
            return condition is { Kind: Models.ConditionKind.Text }
                ? new InferenceSession(Google.Protobuf.MessageExtensions.ToByteArray(PromptGraph.LoadForward(modelPath, condition)), options)
                : new InferenceSession(modelPath, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new ModelFileException($"{modelPath}: ONNX Runtime cannot load the model ({e.Message})", e);
        }
    }
}
