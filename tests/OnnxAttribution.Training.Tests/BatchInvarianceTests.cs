using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Store;
using OnnxAttribution.Training.Tests.Support;

namespace OnnxAttribution.Training.Tests;

/// <summary>
/// An example's features and loss are the same bits whatever the batch it is computed in: alone, with others, split
/// differently. ONNX Runtime's CPU kernels pick their blocking by the shapes of a run, so this holds only because every run
/// holds one example's pairs (<see cref="GradientSource.ForEachPair(ReadOnlySpan{float}, int, IReadOnlyList{string}, ReadOnlySpan{long}, Action{PairBatch}, CotangentFunction, ReadOnlySpan{long})"/>).
/// On the shipped model, where a batch of several examples per run gave other last bits than one alone.
/// </summary>
[TestFixture]
public sealed class BatchInvarianceTests
{
    private const int Count = 5;
    private ImageDataset _data = null!;
    private string _model = "";

    [OneTimeSetUp]
    public void SetUp()
    {
        _model = Path.Combine(TestData.RepositoryRoot(), "models", "fm16");
        _data = SubsetSpec.Parse($"0:{Count}").Apply(Repository.Locator.Load("embedded"));
    }

    // Ten timesteps run as two runs of five pairs each; three as one run.
    [TestCase(ProjectorKind.Dense, MeasurementKind.Square, 10)]
    [TestCase(ProjectorKind.Factored, MeasurementKind.Loss, 10)]
    [TestCase(ProjectorKind.Dense, MeasurementKind.Loss, 3)]
    public void Extract_AloneTogetherOrSplit_SameBits(ProjectorKind projector, MeasurementKind measurement, int timesteps)
    {
        var plan = new FeaturizationPlan(FeaturizationPlan.Evenly(1000, timesteps), 1, 5, measurement);
        using var model = new GradientModel(_model, plan, new ProjectionSettings(projector, ProjectionKind.Rademacher, 1024, 11));
        var extractor = model.Extractor;
        int k = extractor.Dim, d = _data.ImageLength;
        var pixels = _data.Pixels.ToArray();

        var together = new float[Count * k];
        var togetherLoss = new float[Count];
        extractor.Extract(pixels, Count, together, togetherLoss);

        var alone = new float[Count * k];
        var aloneLoss = new float[Count];
        for (int b = 0; b < Count; b++)
        {
            extractor.Extract(pixels.AsSpan(b * d, d), 1, alone.AsSpan(b * k, k), aloneLoss.AsSpan(b, 1));
        }

        var split = new float[Count * k];
        extractor.Extract(pixels.AsSpan(0, 2 * d), 2, split.AsSpan(0, 2 * k));
        extractor.Extract(pixels.AsSpan(2 * d, 3 * d), 3, split.AsSpan(2 * k, 3 * k));

        Assert.That(together.Max(MathF.Abs), Is.GreaterThan(0f));
        Assert.That(alone, Is.EqualTo(together), "one example alone against all five in one call");
        Assert.That(split, Is.EqualTo(together), "batches of 2 and 3 against one of 5");
        Assert.That(aloneLoss, Is.EqualTo(togetherLoss));
    }

    [Test]
    public void Featurize_BatchSizeOneOrFour_SameBytes()
    {
        var dir = Directory.CreateTempSubdirectory("oa-batch-").FullName;
        try
        {
            FeaturizeOptions Options(int batch) => new()
            {
                ModelDirectory = _model,
                Data = _data,
                Plan = new FeaturizationPlan(FeaturizationPlan.Evenly(1000, 10), 1, 5, MeasurementKind.Square),
                Projection = new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, 256, 4),
                OutDirectory = Path.Combine(dir, $"batch-{batch}"),
                BatchSize = batch,
                RecordLosses = true,
            };
            using (TrakEngine.Featurize(Options(1)))
            {
            }
            using (TrakEngine.Featurize(Options(4)))
            {
            }
            foreach (var file in new[] { OnnxAttribution.Store.StoreFiles.Features, StoreFiles.Losses, OnnxAttribution.Store.StoreFiles.Meta })
            {
                Assert.That(File.ReadAllBytes(Path.Combine(dir, "batch-4", file)), Is.EqualTo(File.ReadAllBytes(Path.Combine(dir, "batch-1", file))), file);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void Noisy_AloneOrTogether_SameBits()
    {
        var plan = new FeaturizationPlan(FeaturizationPlan.Evenly(1000, 2), 1, 5, MeasurementKind.Loss);
        using var model = new GradientModel(_model, plan, new ProjectionSettings(ProjectorKind.Dense, ProjectionKind.Rademacher, 512, 11));
        var extractor = model.Extractor;
        int k = extractor.Dim, d = _data.ImageLength;
        var states = _data.Pixels.ToArray();
        var noise = states.Select((v, i) => MathF.Sin(i * 0.37f)).ToArray();

        var together = new float[Count * k];
        extractor.Extract(extractor.Source.Noisy(states, noise, 400, Count), together);
        var alone = new float[Count * k];
        for (int b = 0; b < Count; b++)
        {
            extractor.Extract(extractor.Source.Noisy(states.AsSpan(b * d, d), noise.AsSpan(b * d, d), 400, 1), alone.AsSpan(b * k, k));
        }
        Assert.That(together.Max(MathF.Abs), Is.GreaterThan(0f));
        Assert.That(alone, Is.EqualTo(together));
    }
}
