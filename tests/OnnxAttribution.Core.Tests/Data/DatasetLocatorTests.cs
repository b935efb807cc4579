using OnnxAttribution.Core.Data;
using OnnxAttribution.Imaging;
using OnnxAttribution.Primitives;

namespace OnnxAttribution.Core.Tests.Data;

public sealed class DatasetLocatorTests : TempDirectoryTest
{
    private DatasetLocator Locator => new(EmbeddedDataDirectory: Path.Combine(RepositoryRoot(), "models", "data"));

    [Test]
    public void Load_Embedded_FingerprintMatchesShippedValue()
    {
        var ds = Locator.Load("embedded");
        Assert.That(ds.Fingerprint, Is.EqualTo(DatasetLocator.EmbeddedFingerprint));
        Assert.That((ds.Count, ds.Channels, ds.Height, ds.Width), Is.EqualTo((4000, 1, 16, 16)));
        Assert.That(ds.Labels, Is.Not.Null);
        Assert.That(ds.Labels!.Distinct().Order(), Is.EqualTo(Enumerable.Range(0, 10)));
        Assert.That(ds.Name, Is.EqualTo(DatasetLocator.EmbeddedName));
    }

    [Test]
    public void Load_EmbeddedAlias_SameDataset()
    {
        Assert.That(Locator.Load("fashion-mnist-16").Fingerprint, Is.EqualTo(DatasetLocator.EmbeddedFingerprint));
    }

    [Test]
    public void Load_EmbeddedReadme_StatesTheFingerprint()
    {
        var readme = File.ReadAllText(Path.Combine(Locator.ResolveEmbeddedDirectory(), "README.md"));
        Assert.That(readme, Does.Contain(DatasetLocator.EmbeddedFingerprint));
    }

    [Test]
    public void FindEmbeddedDirectory_NestedStart_FindsModelsDataAbove()
    {
        // Outside the source tree (the test's own folder may sit inside it, where the real models/data is found).
        var root = Directory.CreateTempSubdirectory("oa-locator-").FullName;
        try
        {
            var data = Path.Combine(root, "repo", "models", "data", DatasetLocator.EmbeddedName);
            Directory.CreateDirectory(data);
            File.WriteAllBytes(Path.Combine(data, DatasetLocator.EmbeddedImagesFile), [0]);
            var deep = Path.Combine(root, "repo", "bin", "Release", "net10.0");
            Directory.CreateDirectory(deep);
            var elsewhere = Path.Combine(root, "elsewhere");
            Directory.CreateDirectory(elsewhere);
            Assert.That(DatasetLocator.FindEmbeddedDirectory([elsewhere, deep]), Is.EqualTo(data));
            Assert.That(DatasetLocator.FindEmbeddedDirectory([elsewhere]), Is.Null);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Test]
    public void Load_EmbeddedDirectoryMissing_Throws()
    {
        Assert.That(() => new DatasetLocator(EmbeddedDataDirectory: TempDir).Load("embedded"),
            Throws.TypeOf<UserInputException>().With.Message.Contains("embedded dataset not found"));
    }

    [Test]
    public void Load_FashionMnistMissing_TellsUserToInstallPackage()
    {
        var locator = new DatasetLocator(FashionMnistDirectory: Path.Combine(TempDir, "none"));
        Assert.That(() => locator.Load("fashion-mnist"),
            Throws.TypeOf<UserInputException>().With.Message.Contains("apt-get install dataset-fashion-mnist"));
    }

    [Test]
    public void Load_FashionMnistTest_ReadsDebianPackage()
    {
        Assert.That(File.Exists(Path.Combine(DatasetLocator.DebianFashionMnistDirectory, "t10k-images-idx3-ubyte.gz")), Is.True,
            "Debian's dataset-fashion-mnist is not installed (bash scripts/setup.sh installs it)");
        var ds = new DatasetLocator().Load("fashion-mnist-test");
        Assert.That((ds.Count, ds.Channels, ds.Height, ds.Width), Is.EqualTo((10000, 1, 28, 28)));
        Assert.That(ds.Labels![0], Is.EqualTo(9)); // the first test image is an ankle boot
    }

    [Test]
    public void Load_IdxPath_FindsLabelsBeside()
    {
        var images = Path.Combine(TempDir, "mine-images-idx3-ubyte.gz");
        IdxFile.WriteImages(images, 2, 2, 2, new byte[8], gzip: true);
        IdxFile.WriteLabels(Path.Combine(TempDir, "mine-labels-idx1-ubyte.gz"), [4, 5], gzip: true);
        var ds = Locator.Load(images);
        Assert.That(ds.Labels, Is.EqualTo(new[] { 4, 5 }));
    }

    [Test]
    public void Load_LabelFilePath_SaysPassTheImageFile()
    {
        var labels = Path.Combine(TempDir, "l-idx1-ubyte");
        IdxFile.WriteLabels(labels, [1], gzip: false);
        Assert.That(() => Locator.Load(labels), Throws.TypeOf<UserInputException>().With.Message.Contains("label file"));
    }

    [Test]
    public void Load_Directory_ReadsPngFolder()
    {
        PngImage.Write(Path.Combine(TempDir, "b.png"), [1f, 1f, 1f, 1f], 1, 2, 2);
        PngImage.Write(Path.Combine(TempDir, "a.png"), [-1f, -1f, -1f, -1f], 1, 2, 2);
        var ds = Locator.Load(TempDir);
        Assert.That(ds.Count, Is.EqualTo(2));
        Assert.That(ds.Image(0).ToArray(), Is.All.EqualTo(-1f)); // sorted by name: a.png first
    }

    [Test]
    public void Load_UnknownName_ListsKnownNames()
    {
        Assert.That(() => Locator.Load("cifar-99"), Throws.TypeOf<SettingException>().With.Message.StartsWith("Data = cifar-99: ").And.Message.Contains("fashion-mnist"));
    }
}
