using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests.Attribution;

/// <summary>
/// Featurization in parallel streams (several examples at once, one ONNX Runtime thread each) against one stream: the
/// same bytes, whatever the streams, the part sizes or ONNX Runtime's thread count.
/// </summary>
public sealed class FeaturizeStreamsTests : TempDirectoryTest
{
    private static readonly ImageDataset Data = new DatasetLocator().Load("embedded", "0:22", 16);

    private FeaturizeOptions Options(string name, ProjectorKind projector, int streams, int threads = 0,
        ProjectionKind distribution = ProjectionKind.Rademacher) => new()
    {
        ModelDirectory = Path.Combine(RepositoryRoot(), "models", "fm16"),
        Data = Data,
        Plan = new FeaturizationPlan([100, 600], 1, 3, MeasurementKind.Square),
        Projection = new ProjectionSettings(projector, distribution, 256, 5),
        OutDirectory = Path.Combine(TempDir, name),
        BatchSize = 8,
        RecordLosses = true,
        GradientNorms = projector == ProjectorKind.Dense,
        Streams = streams,
        Session = new SessionSettings(ExecutionDevice.Cpu, threads),
    };

    private byte[] File(string name, string file) => System.IO.File.ReadAllBytes(Path.Combine(TempDir, name, file));

    [TestCase(ProjectorKind.Dense, ProjectionKind.Rademacher)]
    [TestCase(ProjectorKind.Dense, ProjectionKind.Gaussian)] // P generated as it projects: the batch's gradients in streams, projected together
    [TestCase(ProjectorKind.Factored, ProjectionKind.Rademacher)]
    public void Featurize_TwoOrThreeStreams_SameBytesAsOne(ProjectorKind projector, ProjectionKind distribution)
    {
        // 22 rows in batches of 8: the last batch is 6 rows, and three streams split 8 rows 2 + 3 + 3.
        foreach (var (name, streams) in new[] { ("one", 1), ("two", 2), ("three", 3) })
        {
            using var store = TrakEngine.Featurize(Options(name, projector, streams, distribution: distribution));
        }

        var files = projector == ProjectorKind.Dense ? new[] { StoreFiles.Features, StoreFiles.Losses, StoreFiles.Norms } : [StoreFiles.Features, StoreFiles.Losses];
        foreach (var file in files)
        {
            Assert.That(File("two", file), Is.EqualTo(File("one", file)), $"{file}, two streams");
            Assert.That(File("three", file), Is.EqualTo(File("one", file)), $"{file}, three streams");
        }
    }

    /// <summary>
    /// The default (a stream per core, each on one ONNX Runtime thread) and one stream with two ONNX Runtime threads give the
    /// same bits on the shipped model: what keeps a training image asked as a query (the query's run uses ONNX Runtime's
    /// threads) equal to its stored row.
    /// </summary>
    [Test]
    public void Featurize_OneThreadPerStream_SameBytesAsTwoThreadsInOneStream()
    {
        using (TrakEngine.Featurize(Options("streams", ProjectorKind.Dense, streams: 2)))
        {
        }
        using (TrakEngine.Featurize(Options("threads", ProjectorKind.Dense, streams: 1, threads: 2)))
        {
        }

        Assert.That(File("streams", StoreFiles.Features), Is.EqualTo(File("threads", StoreFiles.Features)));
    }

    [Test]
    public void StreamSession_AutomaticStreamsOnTheCpu_OneThreadEach_ExplicitThreadsKept()
    {
        var automatic = FeaturizeOptions.StreamSessionOf(SessionSettings.Default, 0);
        var explicitThreads = FeaturizeOptions.StreamSessionOf(new SessionSettings(ExecutionDevice.Cpu, 2), 0);

        Assert.That(FeaturizeOptions.ResolveStreams(SessionSettings.Default, 0), Is.EqualTo(Environment.ProcessorCount));
        Assert.That(automatic.IntraOpThreads, Is.EqualTo(Environment.ProcessorCount > 1 ? 1 : 0));
        Assert.That((FeaturizeOptions.ResolveStreams(new SessionSettings(ExecutionDevice.Cpu, 2), 0), explicitThreads.IntraOpThreads), Is.EqualTo((1, 2)));
        Assert.That(FeaturizeOptions.ResolveStreams(new SessionSettings(ExecutionDevice.Cuda), 0), Is.EqualTo(1));
        Assert.That(FeaturizeOptions.ResolveStreams(SessionSettings.Default, 3), Is.EqualTo(3));
    }
}
