using OnnxAttribution.Primitives;
using OnnxAttribution.Imaging;
using OnnxAttribution.Store;
using SharpFuzz;

// Fuzz targets: a reader given any bytes either returns or throws its documented exception (StoreFormatException for the
// .npy header, UserInputException for a PNG). Anything else — another exception, a hang, a crash — is a finding.
//   OnnxAttribution.Fuzz npy|png            run under afl-fuzz (tools/fuzz.sh), reading each input from stdin
//   OnnxAttribution.Fuzz npy|png DIR...     run every file of the folders once, in process; exit 1 on a finding
//   OnnxAttribution.Fuzz seed DIR           write seed inputs (valid and near-valid files) into DIR/npy and DIR/png
if (args.Length < 1 || args[0] is not ("npy" or "png" or "seed"))
{
    Console.Error.WriteLine("usage: OnnxAttribution.Fuzz npy|png [DIR...] | seed DIR");
    return 2;
}
if (args[0] == "seed")
{
    Seeds.Write(args[1]);
    return 0;
}
Action<Stream> target = args[0] == "npy" ? Targets.Npy : Targets.Png;
if (args.Length == 1)
{
    Fuzzer.OutOfProcess.Run(target);
    return 0;
}
int findings = 0, inputs = 0;
foreach (string file in args.Skip(1).SelectMany(d => Directory.EnumerateFiles(d, "*", SearchOption.AllDirectories)).Order(StringComparer.Ordinal))
{
    inputs++;
    try
    {
        using var stream = File.OpenRead(file);
        target(stream);
    }
#pragma warning disable CA1031 // a finding is any exception the target let through
    catch (Exception e)
#pragma warning restore CA1031
    {
        findings++;
        Console.Error.WriteLine($"{file}: {e.GetType().Name}: {e.Message}");
    }
}
Console.WriteLine($"{inputs} inputs, {findings} findings");
return findings == 0 ? 0 : 1;

internal static class Targets
{
    public static void Npy(Stream input)
    {
        try
        {
            NpyFormat.ReadHeader(input, "fuzz.npy");
        }
        catch (StoreFormatException)
        {
            // the documented refusal
        }
    }

    public static void Png(Stream input)
    {
        using var buffer = new MemoryStream();
        input.CopyTo(buffer);
        try
        {
            PngImage.Read(buffer.ToArray(), "fuzz.png");
        }
        catch (UserInputException)
        {
            // the documented refusal
        }
    }
}

internal static class Seeds
{
    public static void Write(string directory)
    {
        string npy = Path.Combine(directory, "npy"), png = Path.Combine(directory, "png");
        Directory.CreateDirectory(npy);
        Directory.CreateDirectory(png);
        File.WriteAllBytes(Path.Combine(npy, "f4.npy"), NpyFormat.BuildHeader(StoreDType.Float32, 3, 4));
        File.WriteAllBytes(Path.Combine(npy, "f2-big.npy"), NpyFormat.BuildHeader(StoreDType.Float16, 60000, 4096));
        var v2 = NpyFormat.BuildHeader(StoreDType.Float32, 7, 1);
        v2[6] = 2;
        File.WriteAllBytes(Path.Combine(npy, "v2.npy"), v2);
        string tmp = Path.Combine(png, "gray.png");
        PngImage.Write(tmp, Enumerable.Range(0, 64).Select(i => (i / 32f) - 1f).ToArray(), 1, 8, 8);
        PngImage.Write(Path.Combine(png, "rgb.png"), Enumerable.Range(0, 3 * 16).Select(i => (i % 7 / 3.5f) - 1f).ToArray(), 3, 4, 4);
    }
}
