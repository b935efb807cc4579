using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests.Attribution;

/// <summary>The derived files of a finalized store (preconditioner.bin) under damage: found on load and by the verifier.</summary>
public sealed class StoreVerifierTests : TempDirectoryTest
{
    private const int Dim = 8;
    private const int N = 37;

    private string Store => Path.Combine(TempDir, "s");

    private string PreconditionerPath => Path.Combine(Store, StoreFiles.Preconditioner);

    [SetUp]
    public void MakeFinalizedStore()
    {
        StoreTestData.WriteAll(Store, StoreTestData.Meta(N, Dim)).Dispose();
        PreconditionerBuilder.Finalize(Store, 1e-3);
    }

    /// <summary>Writes NaN over the factor's entry (row, column) of the packed lower triangle after the 64-byte header.</summary>
    private void PoisonFactor(int row, int column)
    {
        using var f = new FileStream(PreconditionerPath, FileMode.Open);
        f.Position = 64 + ((((long)row * (row + 1) / 2) + column) * sizeof(double));
        f.Write(BitConverter.GetBytes(double.NaN));
    }

    private byte[] StoreFingerprint() => PreconditionerBuilder.StoreFingerprint(Store);

    [Test]
    public void Finalize_RecordsThePreconditionersChecksum()
    {
        var sums = StoreChecksums.TryLoad(Store)!;
        Assert.That(sums.Files.Keys, Is.EquivalentTo(new[] { StoreFiles.Meta, StoreFiles.Preconditioner, StoreFiles.Gram }));
        Assert.That(sums.Files[StoreFiles.Preconditioner], Is.EqualTo(StoreChecksums.OfFile(PreconditionerPath)));
        Assert.That(StoreVerifier.Verify(Store).Ok, Is.True);
    }

    [Test]
    public void Load_NaNInTheFactor_ThrowsNamingFileAndEntry()
    {
        PoisonFactor(5, 2);

        var e = Assert.Throws<StoreFormatException>(() => Preconditioner.Load(PreconditionerPath, Dim, N, StoreFingerprint()))!;

        Assert.That(e.Message, Does.StartWith(PreconditionerPath).And.Contain("entry (5, 2)").And.Contain("NaN").And.Contain("finalize"));
    }

    [Test]
    public void Load_ZeroOnTheDiagonal_Throws()
    {
        using (var f = new FileStream(PreconditionerPath, FileMode.Open))
        {
            f.Position = 64 + (((3L * 4 / 2) + 3) * sizeof(double));
            f.Write(BitConverter.GetBytes(0.0));
        }

        var e = Assert.Throws<StoreFormatException>(() => Preconditioner.Load(PreconditionerPath, Dim, N, StoreFingerprint()))!;

        Assert.That(e.Message, Does.Contain("entry (3, 3)").And.Contain("> 0 on the diagonal"));
    }

    [Test]
    public void RequireFile_PreconditionerChangedAfterFinalize_ThrowsNamingItAndTheRemedy()
    {
        PoisonFactor(1, 0);

        var e = Assert.Throws<StoreFormatException>(() => StoreChecksums.RequireFile(Store, StoreFiles.Preconditioner, "run 'finalize' again"))!;

        Assert.That(e.Message, Does.StartWith(PreconditionerPath).And.Contain("does not match its checksum").And.Contain("run 'finalize' again"));
    }

    [Test]
    public void Verify_PoisonedPreconditioner_FailsItsChecksumAndFactorChecks()
    {
        PoisonFactor(7, 7);

        var result = StoreVerifier.Verify(Store);

        Assert.That(result.Checks.Where(c => !c.Ok).Select(c => (c.File, c.Check)),
            Is.EqualTo(new[] { (PreconditionerPath, "checksum"), (PreconditionerPath, "factor") }));
    }

    [Test]
    public void Finalize_StoreMadeBeforeChecksums_RecordsFeaturesAndPreconditioner()
    {
        File.Delete(Path.Combine(Store, StoreFiles.Checksums));
        File.WriteAllText(Path.Combine(Store, StoreFiles.Meta), StoreTestData.Meta(N, Dim).ToJson());

        PreconditionerBuilder.Finalize(Store, 1e-2);

        var sums = StoreChecksums.TryLoad(Store)!;
        Assert.That(sums.FeatureChunks, Has.Count.EqualTo(1));
        Assert.That(sums.Files.Keys, Is.EquivalentTo(new[] { StoreFiles.Meta, StoreFiles.Preconditioner, StoreFiles.Gram }));
        Assert.That(StoreVerifier.Verify(Store).Ok, Is.True);
    }

    [Test]
    public void Verify_NotAStore_ReportsTheOpenFailure()
    {
        File.Delete(Path.Combine(Store, StoreFiles.Done));

        var result = StoreVerifier.Verify(Store);

        Assert.That(result.Ok, Is.False);
        Assert.That(result.Checks.Single().Detail, Does.Contain(StoreFiles.Done));
    }
}
