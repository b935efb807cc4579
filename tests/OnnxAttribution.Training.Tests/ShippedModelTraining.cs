using System.Diagnostics;
using System.Globalization;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Core.Imaging;
using OnnxAttribution.Core.Models;
using OnnxAttribution.Training.Tests.Support;

namespace OnnxAttribution.Training.Tests;

/// <summary>
/// Trains and exports the shipped model <c>models/fm16</c>. Not a test: run it through <c>tools/train-shipped-model.sh</c>.
/// Settings come from environment variables (OA_FM16_*); a run resumes from the checkpoints in its work folder, so
/// running it again with OA_FM16_STEPS set to the last checkpoint's step just exports.
/// </summary>
[Explicit("trains the shipped model for tens of minutes; run tools/train-shipped-model.sh")]
[Category("Slow")]
public sealed class ShippedModelTraining
{
    [Test]
    public void TrainShippedModel()
    {
        string root = TestData.RepositoryRoot();
        string outDir = Env("OA_FM16_OUT", Path.Combine(root, "models", "fm16"));
        string work = Env("OA_FM16_WORK", "/tmp/fm16-train");
        int steps = int.Parse(Env("OA_FM16_STEPS", "6000"), CultureInfo.InvariantCulture);
        int batch = int.Parse(Env("OA_FM16_BATCH", "64"), CultureInfo.InvariantCulture);
        Directory.CreateDirectory(work);
        using var log = new StreamWriter(Path.Combine(work, "train.log"), append: true) { AutoFlush = true };
        void Log(string line)
        {
            var stamped = $"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ssZ} {line}";
            log.WriteLine(stamped);
            TestContext.Progress.WriteLine(stamped);
        }

        var data = new DatasetLocator(EmbeddedDataDirectory: Path.Combine(root, "models", "data")).Load("embedded");
        var options = new TrainOptions
        {
            Data = data,
            Steps = steps,
            BatchSize = batch,
            LearningRate = 1e-3,
            WarmupSteps = 200,
            EmaDecay = 0.999,
            Seed = 20261123,
            Threads = 2,
            CheckpointDirectory = Path.Combine(work, "checkpoints"),
            CheckpointEvery = 250,
            ProgressEvery = 50,
        };
        Log($"data {data.Name}: {data.Count} images {data.Channels}x{data.Height}x{data.Width}, fingerprint {data.Fingerprint}");
        Log($"options: steps {steps}, batch {batch}, lr {options.LearningRate}, ema {options.EmaDecay}, seed {options.Seed}, threads {options.Threads}, " +
            $"MALLOC_MMAP_THRESHOLD_={Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_")}");
        var windows = new List<TrainProgress>();
        var progress = new InlineProgress(p =>
        {
            windows.Add(p);
            Log(string.Create(CultureInfo.InvariantCulture,
                $"step {p.Step}/{p.TotalSteps} loss {p.Loss:F4} {p.MillisecondsPerStep:F1} ms/step {p.ImagesPerSecond:F0} images/s elapsed {p.Elapsed.TotalSeconds:F0} s"));
        });
        var clock = Stopwatch.StartNew();
        using var result = DdpmTrainer.Train(options, progress);
        Log($"trained to step {result.Steps} in {result.Elapsed.TotalSeconds:F0} s this process; final loss {result.FinalLoss:F4}");

        double priorSeconds = ReadPriorSeconds(work);
        double totalSeconds = priorSeconds + result.Elapsed.TotalSeconds;
        File.WriteAllText(Path.Combine(work, "train-seconds.txt"), totalSeconds.ToString("R", CultureInfo.InvariantCulture));
        var info = new TrainingInfo("fashion-mnist-16 (models/data, embedded)", "all 4000 (training images 0..3999)", result.Steps, batch,
            options.LearningRate, options.EmaDecay, options.Seed, result.FinalLoss, Math.Round(totalSeconds, 1));
        var exported = OnnxExporter.Export(result.Ema, options.Schedule, info, outDir, name: "fm16");
        Log($"exported {exported.ForwardPath} ({new FileInfo(exported.ForwardPath).Length} bytes)");

        var sampleClock = Stopwatch.StartNew();
        var samples = AncestralSampler.Sample(result.Ema, options.Schedule, 64, seed: 1);
        ImageGrid.Write(Path.Combine(outDir, "samples.png"), samples, 64, 1, 16, 16, new GridLayout(8, Scale: 3, Gap: 2));
        Log($"64 samples (1000 ancestral steps, TorchSharp) in {sampleClock.Elapsed.TotalSeconds:F1} s -> samples.png");
        var real = data.Select(Enumerable.Range(0, 64).ToArray());
        ImageGrid.Write(Path.Combine(work, "data.png"), real.Pixels, 64, 1, 16, 16, new GridLayout(8, Scale: 3, Gap: 2));

        if (windows.Count > 0)
        {
            var ms = windows.Select(w => w.MillisecondsPerStep).Order().ToArray();
            var ips = windows.Select(w => w.ImagesPerSecond).Order().ToArray();
            File.WriteAllText(Path.Combine(work, "speed.txt"), string.Create(CultureInfo.InvariantCulture,
                $"windows {ms.Length} (of {options.ProgressEvery} steps): ms/step median {ms[ms.Length / 2]:F1} min {ms[0]:F1} max {ms[^1]:F1}; images/s median {ips[ips.Length / 2]:F0}\n"));
        }
        Log($"done in {clock.Elapsed.TotalSeconds:F0} s");
    }

    private static double ReadPriorSeconds(string work)
    {
        var path = Path.Combine(work, "train-seconds.txt");
        return File.Exists(path) ? double.Parse(File.ReadAllText(path), CultureInfo.InvariantCulture) : 0;
    }

    private static string Env(string name, string fallback) =>
        Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : fallback;

    private sealed class InlineProgress(Action<TrainProgress> report) : IProgress<TrainProgress>
    {
        public void Report(TrainProgress value) => report(value);
    }
}
