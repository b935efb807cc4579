using CommandLine;
using OnnxAttribution.Cli.Verbs;
using OnnxAttribution.Core;
using OnnxAttribution.Onnx;

namespace OnnxAttribution.Cli;

/// <summary>
/// Exit codes: 0 success, 1 unexpected failure (the exception on stderr), 2 bad input or files (an option out of range, a
/// missing, damaged or unwritable file, a full disk, a store locked by another writer), 3 a check that ran and failed, 130 cancelled.
/// </summary>
internal static class CliApp
{
    public const int Ok = 0;
    public const int Crash = 1;
    public const int BadInput = 2;
    public const int CheckFailed = 3;
    public const int Cancelled = 130;

    public static int Run(string[] args)
    {
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
            Console.Error.WriteLine("cancelling: finishing the current step and saving what is done...");
        };
        var parser = new Parser(s =>
        {
            s.HelpWriter = Console.Error;
            s.CaseInsensitiveEnumValues = true;
            s.AutoVersion = true;
        });
        var result = parser.ParseArguments(args, VerbTypes);
        try
        {
            return result.MapResult(
                (object options) =>
                {
                    if (options is EvaluateVerb evaluate)
                    {
                        evaluate.CommandLine = CommandLineOf(args);
                    }
                    return Dispatch(options, cancel.Token);
                },
                _ => BadInput);
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("cancelled");
            return Cancelled;
        }
        catch (Exception e) when (e is AttributionException or OnnxGraphException or IOException or UnauthorizedAccessException)
        {
            // IOException covers missing files and folders, a full disk and files held by another process; the messages name the path.
            Console.Error.WriteLine($"error: {e.Message}");
            return BadInput;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"unexpected failure (a bug; please report it with this text): {e}");
            return Crash;
        }
    }

    /// <summary>The arguments as a shell command line ('onnx-attribution' and each argument, single-quoted where needed).</summary>
    private static string CommandLineOf(string[] args) => string.Join(' ', new[] { "onnx-attribution" }.Concat(args.Select(a =>
        a.Length > 0 && a.All(c => char.IsAsciiLetterOrDigit(c) || "-_.,:/=+@%".Contains(c)) ? a : "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'")));

    private static readonly Type[] VerbTypes =
    [
        typeof(TrainVerb), typeof(TrainEnsembleVerb), typeof(ExportVerb), typeof(DifferentiateVerb), typeof(CheckGradientsVerb), typeof(GenerateVerb),
        typeof(FeaturizeVerb), typeof(FinalizeVerb), typeof(MergeVerb), typeof(AttributeVerb), typeof(InspectVerb), typeof(VerifyVerb),
        typeof(EvaluateVerb),
        typeof(InfluentialVerb),
    ];

    private static int Dispatch(object options, CancellationToken cancel)
    {
        // Every option is range-checked before any work starts.
        ((IVerbOptions)options).Validate();
        return Run(options, cancel);
    }

    private static int Run(object options, CancellationToken cancel) => options switch
    {
        TrainVerb o => TrainCommand.Run(o, cancel),
        TrainEnsembleVerb o => TrainEnsembleCommand.Run(o, cancel),
        ExportVerb o => ExportCommand.Run(o),
        DifferentiateVerb o => DifferentiateCommand.Run(o),
        CheckGradientsVerb o => CheckGradientsCommand.Run(o),
        GenerateVerb o => GenerateCommand.Run(o, cancel),
        FeaturizeVerb o => FeaturizeCommand.Run(o, cancel),
        FinalizeVerb o => FinalizeCommand.Run(o),
        MergeVerb o => MergeCommand.Run(o),
        AttributeVerb o => AttributeCommand.Run(o, cancel),
        InspectVerb o => InspectCommand.Run(o),
        VerifyVerb o => VerifyCommand.Run(o),
        EvaluateVerb o => EvaluateCommand.Run(o, cancel),
        InfluentialVerb o => InfluentialCommand.Run(o, cancel),
        _ => throw new InvalidOperationException($"verb {options.GetType().Name} has no command"),
    };
}
