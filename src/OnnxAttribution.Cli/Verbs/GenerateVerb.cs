using CommandLine;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution.Ensembles;
using OnnxAttribution.Imaging;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Runtime;
using OnnxAttribution.Runtime.Sampling;

namespace OnnxAttribution.Cli.Verbs;

[Verb("generate", HelpText = "Generate images with ONNX Runtime from a model folder's forward.onnx (DDIM or DDPM, seeded: the same seed gives the same image on any machine).")]
internal sealed class GenerateVerb : SessionVerbOptions, IVerbOptions
{
    [Option("model", HelpText = "A model folder (model.json + forward.onnx). Give this or --ensemble.")]
    public string? Model { get; set; }

    [Option("ensemble", HelpText = "An ensemble folder written by 'train-ensemble': sample from its member --member (the member folders are model folders).")]
    public string? Ensemble { get; set; }

    [Option("member", Default = 0, HelpText = "With --ensemble: the member to sample from (0-based).")]
    public int Member { get; set; }

    [Option("seed", Default = 0L, HelpText = "Seed of the first image; image k of --count uses seed + k.")]
    public long Seed { get; set; }

    [Option("count", Default = 1, HelpText = "Number of images; more than one writes a grid.")]
    public int Count { get; set; }

    [Option("steps", Default = 50, HelpText = "Denoising steps (evenly spaced over the model's T).")]
    public int Steps { get; set; }

    [Option("sampler", Default = SamplerKind.Ddim, HelpText = "ddim or ddpm.")]
    public SamplerKind Sampler { get; set; }

    [Option("eta", Default = 0.0, HelpText = "DDIM's η (0: deterministic).")]
    public double Eta { get; set; }

    [Option("out", Required = true, HelpText = "The PNG to write (a grid when --count > 1).")]
    public string Out { get; set; } = "";

    [Option("trajectory", HelpText = "Also write the sampling trajectory (every x_t) of the first image to this .traj file.")]
    public string? Trajectory { get; set; }

    [Option("scale", Default = 8, HelpText = "Upscaling of the PNG (nearest neighbour), so small images are visible.")]
    public int Scale { get; set; }

    [Option("columns", Default = 8, HelpText = "Grid columns.")]
    public int Columns { get; set; }

    [Option("label", HelpText = "For a class-conditional model (train --condition label): the class label to generate (0-based; Fashion-MNIST 7 = Sneaker).")]
    public long? Label { get; set; }

    [Option("prompt", HelpText = "For a text-conditioned model (train --condition text): the prompt to generate, e.g. \"a dark sneaker\" " +
        "(words from the model's vocabulary, which inspect lists).")]
    public string? Prompt { get; set; }

    [Option("guidance", Default = 1.0, HelpText = "Classifier-free guidance scale w for a conditional model: ε̂ = ε̂(∅) + w·(ε̂(label) − ε̂(∅)) " +
        "(∅: the null label, or the empty prompt); 1 is the conditional prediction alone, larger values follow the condition more closely (two model runs per step).")]
    public double Guidance { get; set; } = 1.0;

    [Option("json", HelpText = "Print what was written as JSON.")]
    public bool Json { get; set; }

    /// <inheritdoc/>
    public void Validate()
    {
        OptionChecks.AtLeast(Member, 0, "--member");
        OptionChecks.InRange(Count, 1, OptionChecks.MaxQueries, "--count");
        OptionChecks.AtLeast(Steps, 1, "--steps");
        OptionChecks.NonNegative(Eta, "--eta");
        OptionChecks.InRange(Scale, 1, OptionChecks.MaxScale, "--scale");
        OptionChecks.AtLeast(Columns, 1, "--columns");
        ValidateSession();
        OptionChecks.OutputFile(Out, "--out");
        OptionChecks.OutputFile(Trajectory, "--trajectory");
    }
}

internal static class GenerateCommand
{
    public static int Run(GenerateVerb o, CancellationToken cancel)
    {
        var dir = ModelDirectory.Open(ModelFolder(o));
        using var denoiser = dir.OpenDenoiser(o.Session);
        var sampler = new DiffusionSampler(denoiser, dir.CreateSchedule());
        var seeds = Enumerable.Range(0, o.Count).Select(k => o.Seed + k).ToArray();
        var options = new SamplerOptions(o.Sampler, o.Steps, o.Eta, RecordTrajectory: o.Trajectory is not null)
        {
            Labels = ConditionSpec.Query(dir.Metadata.Condition, o.Label, o.Prompt, "--label", "--prompt") is long value ? [value] : null,
            Guidance = o.Guidance,
        };
        var bar = new ConsoleProgress("generate");
        var progress = new SyncProgress<int>(step => bar.Report(step, o.Steps, $"{o.Sampler} step"));
        var result = sampler.Sample(seeds, options, progress, cancel);
        int c = result.Channels, h = result.Height, w = result.Width;
        if (o.Count == 1)
        {
            PngImage.Write(o.Out, result.Image(0), c, h, w, o.Scale);
        }
        else
        {
            ImageGrid.Write(o.Out, result.Images, o.Count, c, h, w, new GridLayout(Math.Min(o.Columns, o.Count), o.Scale),
                seeds.Select(s => (string?)$"seed {s}").ToList());
        }
        if (o.Trajectory is not null && result.Trajectories is { Count: > 0 } trajectories)
        {
            TrajectoryFile.Write(o.Trajectory, trajectories[0]);
        }
        var summary = new { model = dir.Path, png = o.Out, trajectory = o.Trajectory, seeds, sampler = o.Sampler, steps = o.Steps, eta = o.Eta };
        if (o.Json)
        {
            Output.WriteJson(summary);
        }
        else
        {
            Console.WriteLine($"wrote {o.Out} ({o.Count} image{(o.Count > 1 ? "s" : "")}, {o.Sampler}, {o.Steps} steps, seeds {seeds[0]}..{seeds[^1]})" +
                (o.Trajectory is null ? "" : $" and trajectory {o.Trajectory}"));
        }
        return CliApp.Ok;
    }

    /// <summary>The model folder of --model, or of --ensemble's --member.</summary>
    private static string ModelFolder(GenerateVerb o)
    {
        if ((o.Model is null) == (o.Ensemble is null))
        {
            throw new Primitives.UserInputException("give exactly one of --model (a model folder) and --ensemble (an ensemble folder, with --member)");
        }
        if (o.Model is not null)
        {
            return o.Model;
        }
        var design = EnsembleDesign.Load(o.Ensemble!);
        if (o.Member < 0 || o.Member >= design.Members)
        {
            throw new Primitives.UserInputException($"--member {o.Member}: {o.Ensemble} has members 0..{design.Members - 1}");
        }
        return Path.Combine(o.Ensemble!, EnsembleDesign.MemberFolder(o.Member));
    }
}
