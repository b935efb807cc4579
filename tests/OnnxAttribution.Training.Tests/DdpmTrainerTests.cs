using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Training.Tests.Support;

namespace OnnxAttribution.Training.Tests;

public sealed class DdpmTrainerTests : TempDirectoryTest
{
    private static TrainOptions Tiny(int steps, string? checkpoints = null, int checkpointEvery = 500) => new()
    {
        Data = TestData.Bars(64, 16, seed: 1),
        Indices = Enumerable.Range(0, 48).ToArray(),
        Recipe = new TrainingRecipe
        {
            Steps = steps,
            BatchSize = 16,
            LearningRate = 2e-3,
            WarmupSteps = 5,
            EmaDecay = 0.999,
            Threads = 2,
            CheckpointEvery = checkpointEvery,
            ProgressEvery = 10,
        },
        Seed = 42,
        CheckpointDirectory = checkpoints,
    };

    [Test]
    public void Train_TinySubset_LossDecreases()
    {
        var reports = new List<TrainProgress>();
        using var result = DdpmTrainer.Train(Tiny(60), new SyncProgress<TrainProgress>(reports.Add));
        double first = result.Losses.Take(10).Average();
        double last = result.Losses.Skip(50).Average();
        TestContext.Out.WriteLine($"loss first 10: {first:F4}, last 10: {last:F4}; {reports[^1].MillisecondsPerStep:F1} ms/step at batch 16");
        Assert.Multiple(() =>
        {
            Assert.That(result.Losses, Has.All.Matches<double>(double.IsFinite));
            Assert.That(last, Is.LessThan(0.6 * first));
            Assert.That(reports.Select(r => r.Step), Is.EqualTo(new[] { 10, 20, 30, 40, 50, 60 }));
            Assert.That(result.Steps, Is.EqualTo(60));
        });
    }

    [Test]
    public void Train_ResumedFromCheckpoint_BitIdenticalToUninterrupted()
    {
        using var straight = DdpmTrainer.Train(Tiny(12));
        var dir = Path.Combine(TempDir, "ckpt");
        using (DdpmTrainer.Train(Tiny(7, dir, checkpointEvery: 100)))
        {
        }
        Assert.That(Directory.GetFiles(dir, "ckpt-*.bin").Select(Path.GetFileName), Is.EqualTo(new[] { "ckpt-00000007.bin" }));
        using var resumed = DdpmTrainer.Train(Tiny(12, dir, checkpointEvery: 100));
        Assert.That(resumed.Losses, Has.Count.EqualTo(5));
        Assert.That(straight.Losses, Has.All.Matches<double>(double.IsFinite));
        AssertSameWeights(resumed.Model, straight.Model);
        AssertSameWeights(resumed.Ema, straight.Ema);
        Assert.That(resumed.Losses, Is.EqualTo(straight.Losses.Skip(7)).AsCollection);
    }

    [Test]
    public void Train_LossGoesNaN_ThrowsNamingTheStepAndSavesNothingAfterIt()
    {
        // Adam moves every weight by about the learning rate per step: at 1e12 the outputs overflow within a few steps.
        var dir = Path.Combine(TempDir, "ckpt");
        var tiny = Tiny(30, dir, checkpointEvery: 1);
        var options = tiny with { Recipe = tiny.Recipe with { LearningRate = 1e12, WarmupSteps = 0, GradientClipNorm = 0 } };
        var e = Assert.Throws<AttributionException>(() => DdpmTrainer.Train(options).Dispose())!;
        Assert.That(e.Message, Does.Contain("diverged").And.Contain(dir));
        int step = int.Parse(System.Text.RegularExpressions.Regex.Match(e.Message, @"step (\d+)").Groups[1].Value);
        Assert.That(step, Is.InRange(2, 30));
        var latest = TrainingCheckpoint.FindLatest(dir)!;
        Assert.That(latest, Does.EndWith($"ckpt-{step - 1:D8}.bin"));
        // Checked before the update: everything in the last checkpoint (weights, EMA, Adam moments) is finite.
        var bad = TrainingCheckpoint.Load(latest).Tensors.Where(t => !t.Values.All(float.IsFinite)).Select(t => t.Name).ToList();
        Assert.That(bad, Is.Empty, latest);
    }

    [Test]
    public void Train_CancelledWithCheckpointDirectory_WritesCheckpointAndThrows()
    {
        var dir = Path.Combine(TempDir, "ckpt");
        using var cts = new CancellationTokenSource();
        var progress = new SyncProgress<TrainProgress>(p =>
        {
            if (p.Step == 10)
            {
                cts.Cancel();
            }
        });
        Assert.That(() => DdpmTrainer.Train(Tiny(100, dir), progress, cts.Token), Throws.InstanceOf<OperationCanceledException>());
        Assert.That(Directory.GetFiles(dir, "ckpt-*.bin").Select(Path.GetFileName), Is.EqualTo(new[] { "ckpt-00000010.bin" }));
    }

    [Test]
    public void Train_CheckpointOfAnotherSeed_Throws()
    {
        var dir = Path.Combine(TempDir, "ckpt");
        using (DdpmTrainer.Train(Tiny(2, dir)))
        {
        }
        Assert.That(() => DdpmTrainer.Train(Tiny(4, dir) with { Seed = 43 }), Throws.TypeOf<ModelFileException>().With.Message.Contains("seed"));
    }

    [Test]
    public void Train_KeepCheckpointsEvery_KeepsMultiplesAndExportStepRecordsRawWeightsAndLearningRate()
    {
        var dir = Path.Combine(TempDir, "run");
        var tiny = Tiny(12, dir, checkpointEvery: 3);
        var options = tiny with { Recipe = tiny.Recipe with { KeepCheckpointsEvery = 4, WarmupSteps = 10 } };
        using var result = DdpmTrainer.Train(options);
        // Saved at 3, 4, 6, 8, 9, 12; kept for good: 4, 8, 12; of the others the newest two stay for resuming.
        Assert.That(Directory.GetFiles(dir, "ckpt-*.bin").Select(Path.GetFileName).Order(),
            Is.EqualTo(new[] { 4, 6, 8, 9, 12 }.Select(TrainingCheckpoint.FileName)));
        new TrainingRunInfo
        {
            Dataset = "bars", DatasetFingerprint = "fp", Subset = "0:48", ImageSize = 16, Examples = 48, Schedule = options.Recipe.ScheduleOrDefault,
            Steps = 12, BatchSize = options.Recipe.BatchSize, LearningRate = options.Recipe.LearningRate, EmaDecay = options.Recipe.EmaDecay,
            Seed = options.Seed, FinalLoss = 0.5, TrainSeconds = 1, MillisecondsPerStep = 1, ImagesPerSecond = 1, Threads = 2,
            WarmupSteps = options.Recipe.WarmupStepsOrDefault,
        }.Save(dir);

        var four = ModelExport.ExportStep(dir, 4, Path.Combine(TempDir, "step-4"), "step-4");
        var twelve = ModelExport.ExportStep(dir, 12, Path.Combine(TempDir, "step-12"), "step-12");
        Assert.Multiple(() =>
        {
            // The rate of the step taken from the weights: warm-up (4 + 1)/10 of 2e-3 after 4 steps, all of it after 12.
            Assert.That(ModelMetadata.Load(Path.Combine(TempDir, "step-4")).Checkpoint, Is.EqualTo(new CheckpointInfo(4, 1e-3)));
            Assert.That(twelve.Metadata.Checkpoint, Is.EqualTo(new CheckpointInfo(12, 2e-3)));
            Assert.That(four.Metadata.Training!.Steps, Is.EqualTo(4));
            Assert.That(File.Exists(Path.Combine(TempDir, "step-4", "vjp.onnx")), Is.False);
            Assert.That(() => ModelExport.ExportStep(dir, 3, Path.Combine(TempDir, "step-3"), "x"),
                Throws.TypeOf<ModelFileException>().With.Message.Contains("4, 6, 8, 9, 12"));
        });
        // The raw weights training ended with, not the EMA.
        var exported = OnnxWeights.Read(twelve.ForwardPath, twelve.Metadata.Parameters);
        foreach (var (name, values) in result.Model.GetWeights())
        {
            Assert.That(exported[name], Is.EqualTo(values).AsCollection, name);
        }
    }

    [Test]
    public void TrainingRunInfo_WrittenBeforeWarmupWasRecorded_ReadsTheDefault200()
    {
        var info = new TrainingRunInfo
        {
            Dataset = "embedded", DatasetFingerprint = "fp", Subset = "all", ImageSize = 16, Examples = 10, Schedule = new(ScheduleKind.Linear, 1000),
            Steps = 5, BatchSize = 4, LearningRate = 1e-3, EmaDecay = 0.999, Seed = 1, FinalLoss = 0.5, TrainSeconds = 1, MillisecondsPerStep = 1,
            ImagesPerSecond = 1, Threads = 2, WarmupSteps = 7,
        };
        info.Save(TempDir);
        var path = Path.Combine(TempDir, TrainingRunInfo.FileName);
        File.WriteAllLines(path, File.ReadAllLines(path).Where(l => !l.Contains("warmupSteps", StringComparison.Ordinal))
            .Select(l => l.Replace("\"threads\": 2,", "\"threads\": 2", StringComparison.Ordinal)));
        Assert.That(TrainingRunInfo.Load(TempDir), Is.EqualTo(info with { WarmupSteps = 200 }));
    }

    [Test]
    public void Train_DataOfWrongSize_Throws()
    {
        var options = Tiny(1) with { Data = TestData.Bars(8, 12, seed: 1), Indices = null };
        Assert.That(() => DdpmTrainer.Train(options), Throws.TypeOf<UserInputException>().With.Message.Contains("12×12"));
    }

    [Test]
    public void StepSeed_DifferentSteps_Differ()
    {
        var seeds = Enumerable.Range(0, 1000).Select(s => DdpmTrainer.StepSeed(42, s)).ToHashSet();
        Assert.That(seeds, Has.Count.EqualTo(1000));
        Assert.That(seeds, Has.All.GreaterThanOrEqualTo(0));
    }

    private static void AssertSameWeights(UNet actual, UNet expected)
    {
        var a = actual.GetWeights();
        foreach (var (name, values) in expected.GetWeights())
        {
            Assert.That(a[name], Is.EqualTo(values).AsCollection, name);
        }
    }

    /// <summary>Reports on the calling thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
