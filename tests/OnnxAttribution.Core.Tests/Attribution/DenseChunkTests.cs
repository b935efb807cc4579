using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Core.Tests.Attribution;

/// <summary>
/// Dense extraction under a memory budget (<see cref="FeatureExtractor.DenseBudgetBytes"/>): a batch whose whole gradients
/// exceed it is computed and projected in chunks, into a reused buffer, and gives the same bits as one piece.
/// </summary>
public sealed class DenseChunkTests : TempDirectoryTest
{
    private static readonly ImageDataset Data = new DatasetLocator().Load("embedded", "0:5", 16);

    private static string Model => Path.Combine(RepositoryRoot(), "models", "fm16");

    [TestCase(ProjectionKind.Rademacher)]
    [TestCase(ProjectionKind.Gaussian)]
    public void Extract_InChunksOfOneAndTwo_SameBitsAsOnePiece(ProjectionKind distribution)
    {
        var plan = new FeaturizationPlan([100, 400, 800], 1, 7, MeasurementKind.Square);
        var projection = new ProjectionSettings(ProjectorKind.Dense, distribution, 128, 3);
        using var model = new GradientModel(Model, plan, projection, new SessionSettings(ExecutionDevice.Cpu, 1));
        var extractor = model.Extractor;
        int count = Data.Count;
        var images = Data.Pixels.ToArray();
        long gradientBytes = extractor.Source.Dimension * sizeof(float);

        (float[] Features, float[] Losses, float[] Norms) Run(long budget, int streams = 1)
        {
            extractor.DenseBudget = budget;
            var features = new float[count * extractor.Dim];
            var losses = new float[count];
            var norms = new float[count];
            extractor.Extract(images, count, features, losses, default, norms, streams);
            return (features, losses, norms);
        }

        var whole = Run(FeatureExtractor.DenseBudgetBytes);
        Assert.That(FeatureExtractor.DenseChunk(extractor.Source.Dimension, count, FeatureExtractor.DenseBudgetBytes), Is.EqualTo(count), "the default holds the batch");
        // Gaussian entries are generated as they project (no sign cache): the extractor then runs a batch's gradients in
        // streams itself and projects them together.
        Assert.That(extractor.SharesProjectionAcrossBatch, Is.EqualTo(distribution == ProjectionKind.Gaussian));
        foreach (long budget in new[] { 2 * gradientBytes + 1, gradientBytes, 1L, FeatureExtractor.DenseBudgetBytes })
        {
            foreach (int streams in new[] { 1, 2, 3 })
            {
                var chunked = Run(budget, streams);
                Assert.That(chunked.Features, Is.EqualTo(whole.Features), $"features, budget {budget}, {streams} streams");
                Assert.That(chunked.Losses, Is.EqualTo(whole.Losses), $"losses, budget {budget}, {streams} streams");
                Assert.That(chunked.Norms, Is.EqualTo(whole.Norms), $"norms, budget {budget}, {streams} streams");
            }
        }
        Assert.That(whole.Features.Distinct().Count(), Is.GreaterThan(count), "the features are not trivially equal");
    }

    [TestCase(283_000L, 16, 1L << 30, 16)]
    [TestCase(35_741_697L, 16, 1L << 30, 7)]
    [TestCase(35_741_697L, 16, 512L << 20, 3)]
    [TestCase(35_741_697L, 16, 1L, 1)]
    [TestCase(35_741_697L, 2, 2L << 30, 2)]
    public void DenseChunk_IsTheExamplesThatFitTheBudget_AtLeastOneAtMostTheBatch(long p, int count, long budget, int expected) =>
        Assert.That(FeatureExtractor.DenseChunk(p, count, budget), Is.EqualTo(expected));
}
