
namespace OnnxAttribution.Primitives.Tests;

/// <summary>Files written whole or not at all: a failure leaves no partial or temporary file.</summary>
public sealed class AtomicFileTests : TempDirectoryTest
{
    [Test]
    public void Write_Succeeds_FileHasTheBytesAndNoTemporaryIsLeft()
    {
        var path = Path.Combine(TempDir, "sub", "a.bin");

        AtomicFile.Write(path, s => s.Write([1, 2, 3]), reserveBytes: 3);

        Assert.That(File.ReadAllBytes(path), Is.EqualTo(new byte[] { 1, 2, 3 }));
        Assert.That(File.Exists(path + AtomicFile.TempSuffix), Is.False);
    }

    [Test]
    public void Write_WriterThrows_LeavesNeitherFileNorTemporary()
    {
        var path = Path.Combine(TempDir, "a.bin");

        Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, s =>
        {
            s.Write([1, 2, 3]);
            throw new InvalidOperationException("stop");
        }));

        Assert.That(Directory.GetFiles(TempDir), Is.Empty);
    }

    [Test]
    public void Write_PathIsADirectory_RefusedNamingIt()
    {
        var path = Path.Combine(TempDir, "d");
        Directory.CreateDirectory(path);

        var e = Assert.Throws<AttributionException>(() => AtomicFile.Write(path, s => s.Write([1])));

        Assert.That(e!.Message, Does.Contain(path).And.Contain("directory"));
        Assert.That(File.Exists(path + AtomicFile.TempSuffix), Is.False);
    }

    [Test]
    public void Create_MoreThanTheDiskHolds_RefusedAtOnceSayingHowMuch()
    {
        var path = Path.Combine(TempDir, "huge.bin");
        const long bytes = 1L << 56;

        var e = Assert.Throws<AttributionException>(() => AtomicFile.Create(path, bytes).Dispose());

        Assert.That(e!.Message, Does.Contain(path).And.Contain($"{bytes} bytes"));
        Assert.That(Directory.GetFiles(TempDir), Is.Empty);
    }
}
