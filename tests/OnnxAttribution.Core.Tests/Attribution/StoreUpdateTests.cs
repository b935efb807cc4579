using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime.Projection;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;

namespace OnnxAttribution.Core.Tests.Attribution;

/// <summary>
/// Living stores on the shipped model: a store built on A and appended with B answers with the same bits as one built on
/// A∪B, and (A∪B) with C removed as one built on (A∪B)∖C; what cannot be updated or is not there is refused.
/// </summary>
public sealed class StoreUpdateTests : TempDirectoryTest
{
    private const double Damping = 0.1;

    private static readonly DatasetLocator Locator = new();

    private static string Model => Path.Combine(RepositoryRoot(), "models", "fm16");

    /// <summary>Featurizes <paramref name="subset"/> of the embedded set into <paramref name="name"/> and, when asked, finalizes it.</summary>
    private string Build(string name, string subset, ProjectorKind projector = ProjectorKind.Dense, bool finalize = true, string method = "d-trak")
    {
        string dir = Path.Combine(TempDir, name);
        var options = new FeaturizeOptions
        {
            ModelDirectory = Model,
            Data = Locator.Load("embedded", subset, 16),
            Subset = subset,
            Plan = new FeaturizationPlan([100, 600], 1, 5, MeasurementKind.Square),
            Projection = new ProjectionSettings(projector, ProjectionKind.Rademacher, 256, 2),
            Method = method,
            OutDirectory = dir,
            BatchSize = 7,
        };
        TrakEngine.Featurize(options).Dispose();
        new StoreSource(Model, "embedded", subset, 16).Save(dir);
        if (finalize)
        {
            PreconditionerBuilder.Finalize(dir, Damping);
        }
        return dir;
    }

    private static AppendRequest Append(string store, string subset) =>
        new() { StoreDirectory = store, Data = Locator.Load("embedded", subset, 16), DataName = "embedded", Subset = subset, BatchSize = 5 };

    /// <summary>Top rows and scores of three query images (embedded rows 200–202) and every row's score.</summary>
    private static (TopKResult[] Top, float[] Scores) Answers(string store, int top, SessionSettings? session = null)
    {
        var images = Locator.Load("embedded", "200:203", 16).Pixels.ToArray();
        using var scorer = TrakScorer.Open(store, Model, session);
        Assert.That(scorer.Store.UseQuantizedRows, Is.EqualTo(session?.ExactScan != true), "ExactScan turns the 8-bit copy off");
        return (scorer.Attribute(images, 3, top), scorer.Scores(images, 3));
    }

    private static byte[] Data(string store, string file, int skip) => File.ReadAllBytes(Path.Combine(store, file)).Skip(skip).ToArray();

    [TestCase(ProjectorKind.Dense)]
    [TestCase(ProjectorKind.Factored)]
    public void Append_ToFinalizedStore_SameBitsAsStoreBuiltOnAllRows(ProjectorKind projector)
    {
        string appended = Build("a", "0:20", projector);
        string whole = Build("ab", "0:33", projector);
        var version = StoreUpdate.Append(Append(appended, "20:33"));

        Assert.That(version.Change, Is.EqualTo("append"));
        Assert.That(version.AddedRows, Is.EqualTo(new long[] { 20, 33 }));
        using (var a = FeatureStore.Open(appended))
        using (var b = FeatureStore.Open(whole))
        {
            Assert.That(a.Rows, Is.EqualTo(33));
            Assert.That(a.Meta.DatasetFingerprint, Is.EqualTo(b.Meta.DatasetFingerprint), "the rows are the same images in the same order");
            Assert.That(a.GetLocalRowsBytes(0, 33).ToArray(), Is.EqualTo(b.GetLocalRowsBytes(0, 33).ToArray()), "features");
        }
        // The factor after its 64-byte header (which holds the store's fingerprint, a hash of meta.json, whose subset reads differently).
        Assert.That(Data(appended, StoreFiles.Preconditioner, 64), Is.EqualTo(Data(whole, StoreFiles.Preconditioner, 64)), "Cholesky factor");
        var (topA, scoresA) = Answers(appended, 33);
        var (topB, scoresB) = Answers(whole, 33);
        Assert.That(scoresA, Is.EqualTo(scoresB), "every score, bit for bit");
        for (int q = 0; q < 3; q++)
        {
            Assert.That(topA[q].Indices, Is.EqualTo(topB[q].Indices), $"query {q}: ranking");
        }
        Assert.That(scoresA.Distinct().Count(), Is.GreaterThan(60), "the scores are not trivially equal");
        Assert.That(StoreSource.TryLoad(appended)!.LoadData().Fingerprint, Is.EqualTo(Locator.Load("embedded", "0:33", 16).Fingerprint),
            "source.json gives back the appended store's images");
    }

    [Test]
    public void Append_TwiceThenFinalize_SameBitsAsStoreBuiltOnAllRows()
    {
        string appended = Build("a", "0:10", finalize: false);
        StoreUpdate.Append(Append(appended, "10:17"));
        StoreUpdate.Append(Append(appended, "17:25"));
        PreconditionerBuilder.Finalize(appended, Damping);
        string whole = Build("ab", "0:25");
        Assert.That(Answers(appended, 25).Scores, Is.EqualTo(Answers(whole, 25).Scores));
        var history = StoreHistory.TryLoad(appended)!;
        Assert.That(history.Versions.Select(v => v.Change), Is.EqualTo(new[] { "featurize", "append", "append", "finalize" }));
        Assert.That(history.Verify(appended), Is.Empty);
    }

    [Test]
    public void Remove_Rows_AnswersAsStoreBuiltWithoutThem()
    {
        string store = Build("a", "0:30");
        int[] removed = [3, 17, 18];
        var keep = Enumerable.Range(0, 30).Except(removed).ToArray();
        string scratch = Build("r", string.Join(",", keep));
        var version = StoreUpdate.Remove(new RemoveRequest { StoreDirectory = store, Rows = [18, 3, 17], Reason = "takedown #7", By = "auditor" });

        Assert.That(version.RemovedRows, Is.EqualTo(new long[] { 3, 17, 18 }));
        Assert.That(version.LiveRows, Is.EqualTo(27));
        var (top, scores) = Answers(store, 30);
        var (topScratch, scoresScratch) = Answers(scratch, 27);
        for (int q = 0; q < 3; q++)
        {
            Assert.That(top[q].Indices, Is.EqualTo(topScratch[q].Indices.Select(i => (long)keep[i])), $"query {q}: the same rows, by their numbers in the store");
            Assert.That(top[q].Scores, Is.EqualTo(topScratch[q].Scores), $"query {q}: the same scores, bit for bit");
            Assert.That(top[q].Indices, Has.None.AnyOf(3L, 17L, 18L), $"query {q}: a removed row is never answered, even when k ≥ N");
            Assert.That(top[q].Count, Is.EqualTo(27));
        }
        Assert.That(keep.Select((row, i) => scores[row]), Is.EqualTo(scoresScratch.Take(27)));
        using var opened = FeatureStore.Open(store);
        var row = new float[opened.Dim];
        foreach (int r in removed)
        {
            opened.ReadRow(r, row);
            Assert.That(row, Is.All.EqualTo(0f), $"row {r}'s features are erased from features.npy");
        }
        Assert.That(StoreHistory.TryLoad(store)!.Head!.Reason, Is.EqualTo("takedown #7"));
    }

    [Test]
    public void Quantize_AnswersAsTheExactScan_VerifyChecksTheCopy_RemoveDeletesIt()
    {
        string store = Build("q", "0:40");
        var exact = new SessionSettings { ExactScan = true };
        var (before, _) = Answers(store, 10, exact);
        StoreQuantizer.Quantize(store);
        var (fromCopy, _) = Answers(store, 10);
        AssertSameAnswers(fromCopy, before);
        Assert.That(StoreVerifier.Verify(store).Ok, Is.True, "verify passes a fresh copy");

        // An edited byte of the int8 rows: verify names the file.
        string codes = Path.Combine(store, StoreFiles.QuantizedFeatures);
        var bytes = File.ReadAllBytes(codes);
        bytes[^3] ^= 0x11;
        File.WriteAllBytes(codes, bytes);
        var failed = StoreVerifier.Verify(store).Checks.Where(c => !c.Ok).ToList();
        Assert.That(failed.Select(c => c.File), Is.EqualTo(new[] { codes }), string.Join("\n", failed));

        StoreQuantizer.Quantize(store);
        StoreUpdate.Remove(new RemoveRequest { StoreDirectory = store, Rows = [before[0].Indices[0], 5], Reason = "test", By = "t" });
        Assert.That(File.Exists(codes) || File.Exists(Path.Combine(store, StoreFiles.QuantizedScales)), Is.False, "remove deletes the stale copy");
        var (exactAfter, _) = Answers(store, 10, exact);
        StoreQuantizer.Quantize(store);
        var (copyAfter, _) = Answers(store, 10);
        AssertSameAnswers(copyAfter, exactAfter);
        Assert.That(copyAfter.SelectMany(r => r.Indices), Has.None.EqualTo(before[0].Indices[0]).And.None.EqualTo(5L));
    }

    private static void AssertSameAnswers(TopKResult[] actual, TopKResult[] expected)
    {
        Assert.That(actual, Has.Length.EqualTo(expected.Length));
        for (int q = 0; q < expected.Length; q++)
        {
            Assert.That(actual[q].Indices, Is.EqualTo(expected[q].Indices), $"query {q}: rows");
            Assert.That(actual[q].Scores, Is.EqualTo(expected[q].Scores), $"query {q}: scores");
        }
    }

    [Test]
    public void AppendThenRemove_AnswersAsStoreBuiltOnTheRowsLeft()
    {
        string store = Build("a", "0:15");
        StoreUpdate.Append(Append(store, "15:26"));
        StoreUpdate.Remove(new RemoveRequest { StoreDirectory = store, Rows = [2, 20], Reason = "privacy" });
        var keep = Enumerable.Range(0, 26).Except([2, 20]).ToArray();
        string scratch = Build("r", string.Join(",", keep));
        var (top, _) = Answers(store, 10);
        var (topScratch, _) = Answers(scratch, 10);
        Assert.That(top[1].Indices, Is.EqualTo(topScratch[1].Indices.Select(i => (long)keep[i])));
        Assert.That(top[1].Scores, Is.EqualTo(topScratch[1].Scores));
        Assert.That(StoreHistory.TryLoad(store)!.Verify(store), Is.Empty);
    }

    [Test]
    public void Append_RowsAlreadyInTheStore_RefusedNamingTheRow()
    {
        string store = Build("a", "0:12", finalize: false);
        Assert.That(() => StoreUpdate.Append(Append(store, "10:14")),
            Throws.TypeOf<UserInputException>().With.Message.Contains("new image 0 is row 10 of the store already"));
        StoreUpdate.Remove(new RemoveRequest { StoreDirectory = store, Rows = [5], Reason = "r" });
        Assert.That(() => StoreUpdate.Append(Append(store, "5:6")), Throws.TypeOf<UserInputException>().With.Message.Contains("which was removed"));
        Assert.That(StoreHistory.TryLoad(store)!.Versions, Has.Count.EqualTo(2), "nothing was appended");
    }

    [Test]
    public void Append_ImagesOfAnotherSize_RefusedNamingTheData()
    {
        string store = Build("a", "0:6", finalize: false);
        var other = new ImageDataset("other", 2, 3, 16, 16, new float[2 * 3 * 16 * 16]);
        Assert.That(() => StoreUpdate.Append(new AppendRequest { StoreDirectory = store, Data = other, DataName = "other.idx" }),
            Throws.TypeOf<UserInputException>().With.Message.Contains("--data other.idx").And.Message.Contains("3×16×16"));
        Assert.That(Directory.Exists(StoreCommit.StagingOf(store)), Is.False, "nothing staged");
    }

    [Test]
    public void Remove_RowsNotThereOrRemovedAlready_Refused()
    {
        string store = Build("a", "0:6", finalize: false);
        Assert.That(() => StoreUpdate.Remove(new RemoveRequest { StoreDirectory = store, Rows = [6], Reason = "r" }),
            Throws.TypeOf<UserInputException>().With.Message.Contains("row 6 is not in the store"));
        StoreUpdate.Remove(new RemoveRequest { StoreDirectory = store, Rows = [1], Reason = "r" });
        Assert.That(() => StoreUpdate.Remove(new RemoveRequest { StoreDirectory = store, Rows = [1, 2], Reason = "r" }),
            Throws.TypeOf<UserInputException>().With.Message.Contains("row 1 was removed"));
        Assert.That(() => StoreUpdate.Remove(new RemoveRequest { StoreDirectory = store, Rows = [2], Reason = " " }),
            Throws.TypeOf<UserInputException>().With.Message.Contains("--reason"));
    }

    [Test]
    public void AppendOrRemove_StoreOfAMethodThatCannotBeUpdated_RefusedNamingTheVerb()
    {
        string store = Build("a", "0:6", finalize: false, method: "das");
        Assert.That(() => StoreUpdate.Append(Append(store, "6:8")),
            Throws.TypeOf<UserInputException>().With.Message.StartsWith("append:").And.Message.Contains("das store"));
        Assert.That(() => StoreUpdate.Remove(new RemoveRequest { StoreDirectory = store, Rows = [1], Reason = "r" }),
            Throws.TypeOf<UserInputException>().With.Message.StartsWith("remove:"));
    }

    [Test]
    public void History_EntryChangedOrFilesReplaced_VerifyNamesTheVersionAndField()
    {
        string store = Build("a", "0:8");
        StoreUpdate.Remove(new RemoveRequest { StoreDirectory = store, Rows = [4], Reason = "takedown" });
        Assert.That(StoreHistory.TryLoad(store)!.Verify(store), Is.Empty);
        string path = Path.Combine(store, StoreFiles.History);
        string text = File.ReadAllText(path);
        File.WriteAllText(path, text.Replace("takedown", "tampered"));
        Assert.That(StoreHistory.TryLoad(store)!.Verify(store), Has.Some.Contains("version 3").And.Some.Contains("'id'"));
        File.WriteAllText(path, text);
        // meta.json changed behind the history's back (still valid JSON): the newest entry no longer describes the folder.
        string meta = Path.Combine(store, StoreFiles.Meta);
        File.AppendAllText(meta, "\n");
        Assert.That(StoreHistory.TryLoad(store)!.Verify(store), Has.Some.Contains("'metaSha256'"));
    }

    [Test]
    public void History_ParentLinkBroken_VerifyNamesTheBrokenLink()
    {
        string store = Build("a", "0:8");
        var history = StoreHistory.TryLoad(store)!;
        var versions = history.Versions.ToList();
        versions[1] = versions[1] with { Parent = new string('0', 64) };
        versions[1] = versions[1] with { Id = versions[1].ComputedId };
        File.WriteAllText(Path.Combine(store, StoreFiles.History),
            System.Text.Json.JsonSerializer.Serialize(history with { Versions = versions }, new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web)));
        Assert.That(StoreHistory.TryLoad(store)!.Verify(store), Has.Some.Contains("version 2").And.Some.Contains("the chain is broken"));
    }
}
