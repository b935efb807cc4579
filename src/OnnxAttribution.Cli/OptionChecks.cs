using System.Globalization;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Cli;

/// <summary>A verb's options, checked by <see cref="CliApp"/> before the verb does any work.</summary>
internal interface IVerbOptions
{
    /// <summary>Range-checks every option that can be checked without opening files.</summary>
    /// <exception cref="UserInputException">An option is out of range (the message names the option and its value).</exception>
    void Validate();
}

/// <summary>Range checks of option values; each failure is a <see cref="UserInputException"/> naming the option and value.</summary>
internal static class OptionChecks
{
    /// <summary>
    /// An error as the command line says it: a library <see cref="SettingException"/> names its setting by this program's
    /// flag for it (the setting's name in kebab case: Damping → --damping), everything else its own message.
    /// </summary>
    public static string Describe(Exception e) =>
        e is SettingException s ? s.Describe((_, value) => $"--{s.KebabName} {value}") : e.Message;

    /// <summary>Most queries (generated images) one run takes: their scores, images and grid are held in memory.</summary>
    public const int MaxQueries = 1024;

    /// <summary>Largest upscaling of a written PNG.</summary>
    public const int MaxScale = 32;

    /// <summary>Largest image side images are resized to.</summary>
    public const int MaxImageSize = 1024;

    /// <summary>Largest feature dimension k: finalize holds a k×k float64 matrix (32 GiB at 65536).</summary>
    public const int MaxDim = 65536;

    /// <summary>Largest batch of examples read and projected together.</summary>
    public const int MaxBatchSize = 4096;

    /// <summary>Throws unless <paramref name="min"/> ≤ <paramref name="value"/> ≤ <paramref name="max"/>.</summary>
    public static void InRange(long value, long min, long max, string option)
    {
        if (value < min || value > max)
        {
            string range = max == long.MaxValue || max == int.MaxValue ? $"at least {min}" : $"between {min} and {max}";
            throw new UserInputException($"{option} {value}: must be {range}");
        }
    }

    /// <summary>Throws unless <paramref name="value"/> ≥ <paramref name="min"/>.</summary>
    public static void AtLeast(long value, long min, string option) => InRange(value, min, long.MaxValue, option);

    /// <summary>Throws unless every value of a list option is ≥ <paramref name="min"/>.</summary>
    public static void AllAtLeast(IEnumerable<long> values, long min, string option)
    {
        foreach (long v in values)
        {
            AtLeast(v, min, option);
        }
    }

    /// <summary>Throws unless <paramref name="value"/> is finite and &gt; 0.</summary>
    public static void Positive(double value, string option)
    {
        if (!(double.IsFinite(value) && value > 0))
        {
            throw new UserInputException($"{option} {Show(value)}: must be a finite number > 0");
        }
    }

    /// <summary>Throws unless <paramref name="value"/> is finite and ≥ 0.</summary>
    public static void NonNegative(double value, string option)
    {
        if (!(double.IsFinite(value) && value >= 0))
        {
            throw new UserInputException($"{option} {Show(value)}: must be a finite number ≥ 0");
        }
    }

    /// <summary>Throws unless 0 ≤ <paramref name="value"/> &lt; 1 (<paramref name="openBelow"/>: 0 &lt; value &lt; 1).</summary>
    public static void Fraction(double value, string option, bool openBelow = false)
    {
        if (!(openBelow ? value > 0 : value >= 0) || !(value < 1))
        {
            throw new UserInputException($"{option} {Show(value)}: must be {(openBelow ? "> 0" : "≥ 0")} and < 1");
        }
    }

    /// <summary>Throws unless <paramref name="value"/> is given (not null or blank).</summary>
    public static void Given(string? value, string option)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            throw new UserInputException($"{option}: must not be empty");
        }
    }

    /// <summary>
    /// Checks an output file before the work that produces it: not an existing directory, and a file can be created beside
    /// it (the folder is writable; a missing folder is created when the file is written).
    /// </summary>
    public static void OutputFile(string? path, string option)
    {
        if (path is null)
        {
            return;
        }
        Given(path, option);
        if (Directory.Exists(path))
        {
            throw new UserInputException($"{option} {path}: is a directory; expected a file to write");
        }
        if (File.Exists(path) && new FileInfo(path).IsReadOnly)
        {
            throw new UserInputException($"{option} {path}: the file is read-only");
        }
        ProbeWritable(Path.GetDirectoryName(Path.GetFullPath(path))!, option, path);
    }

    /// <summary>Checks an output folder before the work: not an existing file, and files can be created in it (or in the
    /// nearest existing folder above it, when it does not exist yet).</summary>
    public static void OutputDirectory(string? path, string option)
    {
        if (path is null)
        {
            return;
        }
        Given(path, option);
        if (File.Exists(path))
        {
            throw new UserInputException($"{option} {path}: is a file; expected a folder");
        }
        ProbeWritable(Path.GetFullPath(path), option, path);
    }

    /// <summary>Creates and removes a probe file in <paramref name="directory"/> or, when it does not exist, its nearest existing parent.</summary>
    private static void ProbeWritable(string directory, string option, string path)
    {
        string? existing = directory;
        while (existing is not null && !Directory.Exists(existing))
        {
            existing = Path.GetDirectoryName(existing);
        }
        if (existing is null)
        {
            return;
        }
        string probe = Path.Combine(existing, $".write-probe-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using var _ = new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserInputException($"{option} {path}: cannot write in {existing}: {e.Message}", e);
        }
    }

    private static string Show(double value) => value.ToString("G", CultureInfo.InvariantCulture);

    /// <summary>The LoRA settings of <c>--lora-rank</c>, <c>--lora-alpha</c> and <c>--lora-targets</c> (train and lds), checked.</summary>
    /// <exception cref="Primitives.UserInputException">One is out of range; the message names it.</exception>
    public static Runtime.Models.LoraSettings Lora(int rank, double alpha, string targets)
    {
        AtLeast(rank, 1, "--lora-rank");
        Positive(alpha, "--lora-alpha");
        return new Runtime.Models.LoraSettings { Rank = rank, Alpha = alpha, Targets = Runtime.Models.LoraSettings.ParseTargets(targets, "--lora-targets") };
    }
}
