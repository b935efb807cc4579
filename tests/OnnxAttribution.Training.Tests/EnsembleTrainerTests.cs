using OnnxAttribution.Store;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Ensembles;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Models;
using OnnxAttribution.Training.Tests.Support;

namespace OnnxAttribution.Training.Tests;

/// <summary>Encoded-ensemble training on a tiny U-Net: the store it writes, resumption, refusing another ensemble's folder.
/// (The planted effect is tested on members with exact losses in Core.Tests, EnsembleMethodTests.)</summary>
public sealed class EnsembleTrainerTests : TempDirectoryTest
{
    // TorchSharp 0.107 gives NaN losses with very few channels; 16 base channels in 4 groups train.
    private static readonly UNetConfig Tiny = new() { BaseChannels = 16, Groups = 4, TimeEmbeddingDim = 32, SinusoidDim = 16 };

    private static EnsembleTrainOptions Options(string dir, ImageDataset data, int steps, int members = 4) => new()
    {
        Data = data,
        DataName = "bars",
        OutDirectory = dir,
        Members = members,
        EncodingSeed = 1,
        Seed = 2,
        Training = new TrainOptions
        {
            Data = data,
            Model = Tiny,
            Recipe = new TrainingRecipe
            {
                Steps = steps,
                BatchSize = 4,
                LearningRate = 2e-3,
                WarmupSteps = 2,
                EmaDecay = 0.9,
                Threads = 1,
                CheckpointEvery = 500,
                ProgressEvery = 1,
            },
        },
        ScoringTimesteps = 4,
        ScoringNoiseDraws = 1,
    };

    [Test]
    public void Train_FourMembers_WritesMethodStoreOfBalancedMembers()
    {
        var data = TestData.Bars(8, 16, seed: 1);
        var dir = Path.Combine(TempDir, "e");
        var reports = new List<EnsembleProgress>();
        var result = EnsembleTrainer.Train(Options(dir, data, steps: 3), new SyncProgress<EnsembleProgress>(reports.Add));

        Assert.Multiple(() =>
        {
            Assert.That(result.Design.Groups, Is.EqualTo(8)); // G = N for a small set
            Assert.That(result.Members.Select(m => m.Rows), Has.All.EqualTo(4));
            Assert.That(result.Members.Select(m => m.Trained), Has.All.True);
            Assert.That(Directory.GetFileSystemEntries(Path.Combine(dir, "member-01")).Select(Path.GetFileName).Order(),
                Is.EqualTo(new[] { "forward.onnx", "model.json" }));
            Assert.That(MethodManifest.TryLoad(dir)!.Method, Is.EqualTo("ensemble"));
            Assert.That(StoreSource.TryLoad(dir)!.ModelDirectory, Is.EqualTo(Path.Combine(dir, "member-00")));
            Assert.That(reports.Select(r => r.Done), Is.EqualTo(Enumerable.Range(1, 12).Select(i => (long)i)));
            Assert.That(reports[^1].Total, Is.EqualTo(12));
        });
        var design = EnsembleDesign.Load(dir);
        Assert.That(design.FirstDifference(EnsembleTrainer.Design(Options(dir, data, steps: 3))), Is.Null);
        for (int g = 0; g < design.Groups; g++)
        {
            Assert.That(Enumerable.Range(0, 4).Count(m => design.Sees(m, g)), Is.EqualTo(2), $"group {g}");
        }

        using var scorer = AttributionMethods.Open(dir);
        var queries = new[] { new AttributionQuery("row 3", data.Image(3).ToArray()) };
        var losses = ((EnsembleScorer)scorer).Losses(queries);
        var scores = scorer.Scores(queries);
        Assert.That(losses, Has.All.Matches<double>(l => double.IsFinite(l) && l > 0));
        Assert.That(losses.Distinct().Count(), Is.EqualTo(4), "members trained on different rows with different seeds differ");
        // Each row scores the mean loss of the members that did not see its group minus that of the members that did.
        for (int row = 0; row < 8; row++)
        {
            int group = design.GroupOfRow[row];
            var seen = Enumerable.Range(0, 4).Where(m => design.Sees(m, group)).Select(m => losses[m]).Average();
            var unseen = Enumerable.Range(0, 4).Where(m => !design.Sees(m, group)).Select(m => losses[m]).Average();
            Assert.That(scores[row], Is.EqualTo(unseen - seen).Within(1e-6 * Math.Abs(unseen)), $"row {row}");
        }
    }

    [Test]
    public void Train_ClassConditional_MembersTakeLabels_AndAQueryIsScoredUnderItsOwn()
    {
        var bars = TestData.Bars(8, 16, seed: 1);
        var data = new ImageDataset("bars", bars.Count, 1, 16, 16, bars.Pixels.ToArray(), Enumerable.Range(0, bars.Count).Select(i => i % 3).ToArray());
        var dir = Path.Combine(TempDir, "conditional");
        var options = Options(dir, data, steps: 3);
        EnsembleTrainer.Train(options with { Training = options.Training with { Model = Tiny with { Classes = 3 } } });
        Assert.That(ModelMetadata.Load(Path.Combine(dir, "member-02")).Condition!.Classes, Is.EqualTo(3));

        using var scorer = (EnsembleScorer)AttributionMethods.Open(dir);
        AttributionQuery Query(long label) => new("row 3", data.Image(3).ToArray()) { Condition = label };
        var one = scorer.Losses([Query(1)]);
        var two = scorer.Losses([Query(2)]);
        Assert.That(one.Concat(two), Has.All.Matches<double>(double.IsFinite));
        Assert.That(one, Is.Not.EqualTo(two), "the label is an input of every member");
        Assert.That(() => scorer.Losses([new AttributionQuery("row 3", data.Image(3).ToArray())]), Throws.ArgumentException.With.Message.Contains("takes a condition per image"));
    }

    [Test]
    public void Train_CancelledDuringMemberTwoThenRerun_SameMembersAsUninterrupted()
    {
        var data = TestData.Bars(8, 16, seed: 1);
        var whole = Path.Combine(TempDir, "whole");
        EnsembleTrainer.Train(Options(whole, data, steps: 4));

        var resumed = Path.Combine(TempDir, "resumed");
        using var cancel = new CancellationTokenSource();
        var progress = new SyncProgress<EnsembleProgress>(p =>
        {
            if (p.Member == 2 && p.Step == 2)
            {
                cancel.Cancel();
            }
        });
        Assert.That(() => EnsembleTrainer.Train(Options(resumed, data, steps: 4), progress, cancel.Token), Throws.InstanceOf<OperationCanceledException>());
        Assert.Multiple(() =>
        {
            Assert.That(File.Exists(Path.Combine(resumed, "member-01", "model.json")), Is.True);
            Assert.That(File.Exists(Path.Combine(resumed, "member-02", "model.json")), Is.False);
            Assert.That(Directory.GetFiles(Path.Combine(resumed, "member-02", "checkpoints")).Select(Path.GetFileName), Is.EqualTo(new[] { "ckpt-00000002.bin" }));
            Assert.That(MethodManifest.TryLoad(resumed), Is.Null, "method.json is written last");
        });

        var reports = new List<EnsembleProgress>();
        var result = EnsembleTrainer.Train(Options(resumed, data, steps: 4), new SyncProgress<EnsembleProgress>(reports.Add));
        Assert.That(result.Members.Select(m => m.Trained), Is.EqualTo(new[] { false, false, true, true }));
        Assert.That(reports.Where(r => r.Member == 2).Select(r => r.Step), Is.EqualTo(new[] { 3, 4 }), "member 2 resumes at its checkpoint");
        for (int m = 0; m < 4; m++)
        {
            var member = EnsembleDesign.MemberFolder(m);
            Assert.That(File.ReadAllBytes(Path.Combine(resumed, member, "forward.onnx")), Is.EqualTo(File.ReadAllBytes(Path.Combine(whole, member, "forward.onnx"))), member);
        }
        Assert.That(MethodManifest.TryLoad(resumed), Is.Not.Null);
    }

    [Test]
    public void Train_FolderOfAnotherEnsemble_ThrowsNamingField()
    {
        var data = TestData.Bars(8, 16, seed: 1);
        var dir = Path.Combine(TempDir, "e");
        EnsembleTrainer.Design(Options(dir, data, steps: 3)).Save(dir);
        Assert.That(() => EnsembleTrainer.Train(Options(dir, data, steps: 5)),
            Throws.TypeOf<UserInputException>().With.Message.Contains("'training'").And.Message.Contains(StoreFiles.Ensemble));
        Assert.That(() => EnsembleTrainer.Train(Options(dir, data, steps: 3, members: 6)),
            Throws.TypeOf<UserInputException>().With.Message.Contains("'encoding'"));
    }

    [Test]
    public void Train_BadLearningRate_RefusedBeforeWritingTheDesign()
    {
        var data = TestData.Bars(8, 16, seed: 1);
        var dir = Path.Combine(TempDir, "e");
        var options = Options(dir, data, steps: 3);
        Assert.That(() => EnsembleTrainer.Train(options with { Training = options.Training with { Recipe = options.Training.Recipe with { LearningRate = -1 } } }),
            Throws.TypeOf<UserInputException>().With.Message.Contains("learningRate"));
        Assert.That(File.Exists(Path.Combine(dir, StoreFiles.Ensemble)), Is.False);
    }

    [Test]
    public void Train_KeepingCheckpoints_KeepsThemInEachMember()
    {
        var data = TestData.Bars(8, 16, seed: 1);
        var dir = Path.Combine(TempDir, "e");
        var options = Options(dir, data, steps: 2, members: 2);
        EnsembleTrainer.Train(options with { KeepCheckpoints = true, Training = options.Training with { Recipe = options.Training.Recipe with { KeepCheckpointsEvery = 1 } } });
        Assert.That(Directory.Exists(Path.Combine(dir, "member-01", "checkpoints")), Is.True);
    }

    [Test]
    public void Train_ZeroSteps_WritesUntrainedMembers()
    {
        var data = TestData.Bars(8, 16, seed: 1);
        var dir = Path.Combine(TempDir, "e");
        var result = EnsembleTrainer.Train(Options(dir, data, steps: 0, members: 2));
        Assert.That(File.Exists(Path.Combine(dir, "member-01", "model.json")), Is.True);
        Assert.That(result.Members, Has.Count.EqualTo(2));
    }
}
