using CommandLine;
using OnnxAttribution.Cli.Verbs;
using OnnxAttribution.Primitives;
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
                    if (options is LdsVerb lds)
                    {
                        lds.CommandLine = CommandLineOf(args);
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
            Console.Error.WriteLine($"error: {OptionChecks.Describe(e)}");
            return BadInput;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"unexpected failure (a bug; please report it with this text): {e}");
            return Crash;
        }
    }

    /// <summary>The arguments as a shell command line ('onnx-attribution' and each argument, single-quoted where needed).</summary>
    internal static string CommandLineOf(string[] args) => string.Join(' ', new[] { "onnx-attribution" }.Concat(args.Select(a =>
        a.Length > 0 && a.All(c => char.IsAsciiLetterOrDigit(c) || "-_.,:/=+@%".Contains(c)) ? a : "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'")));

    /// <summary>Every verb, once: its options type (the parser's verb list, in --help's order) and the command that runs it.</summary>
    private static readonly (Type Options, Func<object, CancellationToken, int> Run)[] Verbs =
    [
        Verb<TrainVerb>(TrainCommand.Run),
        Verb<TrainEnsembleVerb>(TrainEnsembleCommand.Run),
        Verb<ExportVerb>((o, _) => ExportCommand.Run(o)),
        Verb<ImportVerb>((o, _) => ImportCommand.Run(o)),
        Verb<DifferentiateVerb>((o, _) => DifferentiateCommand.Run(o)),
        Verb<CheckGradientsVerb>((o, _) => CheckGradientsCommand.Run(o)),
        Verb<GenerateVerb>(GenerateCommand.Run),
        Verb<FeaturizeVerb>(FeaturizeCommand.Run),
        Verb<FinalizeVerb>((o, _) => FinalizeCommand.Run(o)),
        Verb<MergeVerb>((o, _) => MergeCommand.Run(o)),
        Verb<AppendVerb>(AppendCommand.Run),
        Verb<RemoveVerb>((o, _) => RemoveCommand.Run(o)),
        Verb<QuantizeVerb>((o, _) => QuantizeCommand.Run(o)),
        Verb<AttributeVerb>(AttributeCommand.Run),
        Verb<ReportVerb>(ReportCommand.Run),
        Verb<InspectVerb>((o, _) => InspectCommand.Run(o)),
        Verb<VerifyVerb>((o, _) => VerifyCommand.Run(o)),
        Verb<LdsVerb>(LdsCommand.Run),
        Verb<LdsCurvesVerb>((o, _) => LdsCommand.RunCurves(o)),
        Verb<CounterfactualVerb>(CounterfactualCommand.Run),
        Verb<InfluentialVerb>(InfluentialCommand.Run),
    ];

    private static (Type, Func<object, CancellationToken, int>) Verb<T>(Func<T, CancellationToken, int> run) where T : IVerbOptions =>
        (typeof(T), (options, cancel) => run((T)options, cancel));

    private static Type[] VerbTypes => Verbs.Select(v => v.Options).ToArray();

    private static int Dispatch(object options, CancellationToken cancel)
    {
        // Every option is range-checked before any work starts.
        ((IVerbOptions)options).Validate();
        return Run(options, cancel);
    }

    private static int Run(object options, CancellationToken cancel) =>
        Verbs.Single(v => v.Options == options.GetType()).Run(options, cancel);
}
