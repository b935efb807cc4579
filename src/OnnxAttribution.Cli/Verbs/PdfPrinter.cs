using System.Diagnostics;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Cli.Verbs;

/// <summary>Prints an HTML file to PDF with a headless Chromium (report --pdf): the browser lays the page out as it shows it.</summary>
internal static class PdfPrinter
{
    /// <summary>The browser used: ONNX_ATTRIBUTION_CHROMIUM, else Debian's package.</summary>
    public static string Chromium => Environment.GetEnvironmentVariable("ONNX_ATTRIBUTION_CHROMIUM") ?? "/usr/bin/chromium";

    /// <summary>Writes <paramref name="pdf"/> from <paramref name="html"/>, whole or not at all.</summary>
    /// <exception cref="UserInputException">Chromium is missing, fails, or writes no PDF; the message names it.</exception>
    public static void Print(string html, string pdf)
    {
        if (!File.Exists(Chromium))
        {
            throw new UserInputException($"--pdf: Chromium not found at {Chromium}: install Debian's package 'chromium' or set ONNX_ATTRIBUTION_CHROMIUM");
        }
        string tmp = Path.GetFullPath(pdf) + AtomicFile.TempSuffix;
        string profile = Directory.CreateTempSubdirectory("oa-chromium-").FullName;
        try
        {
            var start = new ProcessStartInfo(Chromium,
                ["--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer", $"--user-data-dir={profile}", $"--print-to-pdf={tmp}",
                    new Uri(Path.GetFullPath(html)).AbsoluteUri])
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            };
            using var process = Process.Start(start) ?? throw new UserInputException($"--pdf: cannot start {Chromium}");
            var stderr = process.StandardError.ReadToEndAsync();
            process.StandardOutput.ReadToEnd();
            if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
            {
                process.Kill(entireProcessTree: true);
                throw new UserInputException($"--pdf: {Chromium} did not finish printing {html} within 60 s");
            }
            if (process.ExitCode != 0 || !File.Exists(tmp) || new FileInfo(tmp).Length == 0)
            {
                throw new UserInputException($"--pdf: {Chromium} exited with {process.ExitCode} and wrote no PDF: {stderr.Result.Trim()}");
            }
            File.Move(tmp, pdf, overwrite: true);
        }
        finally
        {
            File.Delete(tmp);
            Directory.Delete(profile, recursive: true);
        }
    }
}
