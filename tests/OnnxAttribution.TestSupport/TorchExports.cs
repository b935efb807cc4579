using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;

namespace OnnxAttribution.TestSupport;

/// <summary>
/// ONNX files written by PyTorch's own exporter (<c>tools/torch-models/export.py</c>, Debian's python3-torch) with their
/// PyTorch-autograd reference gradients, cached under a hash of the scripts and the arguments so that a rerun costs nothing.
/// A machine without torch fails here, naming the package: scripts/setup.sh installs it.
/// </summary>
public static class TorchExports
{
    private const string Python = "/usr/bin/python3";

    /// <summary>Where exports are cached: $ONNX_ATTRIBUTION_TORCH_CACHE, else ~/.cache/onnx-attribution/torch-models.</summary>
    public static string CacheRoot => Environment.GetEnvironmentVariable("ONNX_ATTRIBUTION_TORCH_CACHE") is { Length: > 0 } set ? set
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "onnx-attribution", "torch-models");

    /// <summary>Exports a model (small width) and returns the folder holding model.onnx and oracle/.</summary>
    /// <param name="repositoryRoot">The repository (tools/torch-models is read from it).</param>
    /// <param name="model">A model of models.py.</param>
    /// <param name="opset">The opset to export at.</param>
    /// <param name="channels">Image channels.</param>
    /// <param name="size">Image side.</param>
    /// <param name="width">small or full.</param>
    /// <param name="dynamicSize">Leave height and width open in the export, as well as the batch.</param>
    public static string Export(string repositoryRoot, string model, int opset, int channels = 1, int size = 16, string width = "small", bool dynamicSize = false)
    {
        var tools = Path.Combine(repositoryRoot, "tools", "torch-models");
        string[] args = ["--model", model, "--width", width, "--opset", opset.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--channels", channels.ToString(System.Globalization.CultureInfo.InvariantCulture), "--size", size.ToString(System.Globalization.CultureInfo.InvariantCulture),
            .. (dynamicSize ? new[] { "--dynamic-size" } : [])];
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(
            File.ReadAllText(Path.Combine(tools, "models.py")) + File.ReadAllText(Path.Combine(tools, "export.py")) + string.Join(' ', args)));
        var folder = Path.Combine(CacheRoot, $"{model}-{opset}{(dynamicSize ? "-dynamic" : "")}-{Convert.ToHexStringLower(hash)[..16]}");
        if (File.Exists(Path.Combine(folder, "oracle", "oracle.json")))
        {
            return folder;
        }
        var temporary = folder + ".tmp-" + Environment.ProcessId;
        if (Directory.Exists(temporary))
        {
            Directory.Delete(temporary, recursive: true);
        }
        var start = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(tools, "export.py"));
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }
        start.ArgumentList.Add("--threads");
        start.ArgumentList.Add("2");
        start.ArgumentList.Add("--out");
        start.ArgumentList.Add(temporary);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"cannot start {Python}");
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            string err = stderr.Result;
            string hint = err.Contains("No module named 'torch'", StringComparison.Ordinal) || err.Contains("No module named 'onnx'", StringComparison.Ordinal)
                ? " (PyTorch is missing: scripts/setup.sh installs Debian's python3-torch and python3-onnx)" : "";
            throw new InvalidOperationException($"export.py {string.Join(' ', args)} failed with exit code {process.ExitCode}{hint}:\n{stdout}\n{err[^Math.Min(err.Length, 3000)..]}");
        }
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }
        Directory.Move(temporary, folder);
        return folder;
    }
}
