using OnnxAttribution.Store;

namespace OnnxAttribution.Cli.Tests;

/// <summary><c>featurize --preset</c>: each preset's setting reaches the store, and an option given beside it wins. (Part of <see cref="CliTests"/>.)</summary>
public sealed partial class CliTests
{
    [TestCase("fast", new string[0], 1, 1024, StoreDType.Float16)]
    [TestCase("default", new string[0], 10, 4096, StoreDType.Float32)]
    [TestCase("quality", new[] { "--dim", "256" }, 30, 256, StoreDType.Float32)]
    [TestCase("fast", new[] { "--timesteps", "2", "--dtype", "float32" }, 2, 1024, StoreDType.Float32)]
    public void Featurize_Preset_SetsTimestepsDimAndDType_GivenOptionsWin(string preset, string[] extra, int timesteps, int dim, StoreDType dtype)
    {
        string store = Path.Combine(_dir, $"preset-{preset}-{extra.Length}");
        Assert.That(RunAfresh(["featurize", "--model", FindShippedModel(), "--subset", "0:3", "--method", "d-trak", "--preset", preset, .. extra,
            "--out", store]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var meta = StoreMeta.Load(Path.Combine(store, StoreFiles.Meta));
        Assert.That((meta.Timesteps.Count, meta.Projector.Dim, meta.DType), Is.EqualTo((timesteps, dim, dtype)));
    }
}
