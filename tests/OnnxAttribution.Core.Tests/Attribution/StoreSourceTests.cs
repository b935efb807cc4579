using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests.Attribution;

/// <summary>source.json resolves from any working directory.</summary>
public sealed class StoreSourceTests : TempDirectoryTest
{
    [Test]
    public void Save_PathsWrittenRelativeToTheStore_LoadGivesThemBackInFull()
    {
        var model = Path.Combine(TempDir, "models", "m");
        var images = Path.Combine(TempDir, "data", "pngs");
        Directory.CreateDirectory(model);
        Directory.CreateDirectory(images);
        var store = Path.Combine(TempDir, "stores", "s");

        new StoreSource(model, images, "0:4", 16).Save(store);

        var text = File.ReadAllText(Path.Combine(store, StoreFiles.Source));
        Assert.That(text, Does.Contain("\"../../models/m\"").And.Contain("\"../../data/pngs\"").And.Not.Contain(TempDir));
        var loaded = StoreSource.TryLoad(store)!;
        Assert.That((loaded.ModelDirectory, loaded.Data, loaded.Subset), Is.EqualTo((model, images, "0:4")));
    }

    [Test]
    public void Save_DatasetName_KeptAsAName()
    {
        var store = Path.Combine(TempDir, "s");

        new StoreSource(Path.Combine(TempDir, "m"), "embedded", "all", 16).Save(store);

        Assert.That(StoreSource.TryLoad(store)!.Data, Is.EqualTo("embedded"));
    }

    [Test]
    public void TryLoad_FileWrittenBeforePathsWereRelativeToTheStore_ReadAsBefore()
    {
        var store = Path.Combine(TempDir, "s");
        Directory.CreateDirectory(store);
        File.WriteAllText(Path.Combine(store, StoreFiles.Source),
            "{ \"modelDirectory\": \"models/fm16\", \"data\": \"embedded\", \"subset\": \"0:10\", \"imageSize\": 16 }");

        var loaded = StoreSource.TryLoad(store)!;

        Assert.That((loaded.ModelDirectory, loaded.Data, loaded.PathsRelativeTo), Is.EqualTo(("models/fm16", "embedded", (string?)null)));
    }
}
