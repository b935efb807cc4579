using System.Text.Json;
using OnnxAttribution.Primitives;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Store;

namespace OnnxAttribution.Cli.Tests;

/// <summary>
/// Wrong answers that used to end with exit 0: another model's forward.onnx, a changed row of features.npy, a NaN in
/// preconditioner.bin or in the query. Each is now refused naming the file; <c>verify</c> checks a store fully.
/// </summary>
[TestFixture]
[NonParallelizable] // redirects the process's console
public sealed class StoreIntegrityTests
{
    private string _fixtureDir = "";
    private string _store = "";
    private string _dir = "";
    private TextWriter _out = null!;
    private TextWriter _err = null!;
    private StringWriter _stdout = null!;
    private StringWriter _stderr = null!;

    private static string ShippedModel()
    {
        var root = typeof(StoreIntegrityTests).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
            .Cast<System.Reflection.AssemblyMetadataAttribute>().Single(a => a.Key == "RepositoryRoot").Value!;
        return Path.Combine(root, "models", "fm16");
    }

    [OneTimeSetUp]
    public void BuildStore()
    {
        _fixtureDir = Directory.CreateTempSubdirectory("oa-integrity-").FullName;
        _store = Path.Combine(_fixtureDir, "store");
        var (o, e) = (Console.Out, Console.Error);
        Console.SetOut(TextWriter.Null);
        Console.SetError(TextWriter.Null);
        try
        {
            Assert.That(CliApp.Run(["featurize", "--model", ShippedModel(), "--subset", "0:12", "--timesteps", "2", "--dim", "64", "--out", _store]), Is.EqualTo(CliApp.Ok));
            Assert.That(CliApp.Run(["finalize", "--store", _store]), Is.EqualTo(CliApp.Ok));
        }
        finally
        {
            Console.SetOut(o);
            Console.SetError(e);
        }
    }

    [OneTimeTearDown]
    public void RemoveStore() => Directory.Delete(_fixtureDir, recursive: true);

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("oa-integrity-test-").FullName;
        (_out, _err) = (Console.Out, Console.Error);
        (_stdout, _stderr) = (new StringWriter(), new StringWriter());
        Console.SetOut(_stdout);
        Console.SetError(_stderr);
    }

    [TearDown]
    public void TearDown()
    {
        Console.SetOut(_out);
        Console.SetError(_err);
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>A copy of the fixture's store (tests damage their copy).</summary>
    private string CopyStore()
    {
        string copy = Path.Combine(_dir, "store");
        Directory.CreateDirectory(copy);
        foreach (string file in Directory.GetFiles(_store))
        {
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        }
        return copy;
    }

    /// <summary>A copy of the shipped model folder's top-level files.</summary>
    private string CopyModel()
    {
        string copy = Path.Combine(_dir, "model");
        Directory.CreateDirectory(copy);
        foreach (string file in Directory.GetFiles(ShippedModel()))
        {
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        }
        return copy;
    }

    private string[] Attribute(string store, string model, string png) =>
        ["attribute", "--store", store, "--model", model, "--seed", "3", "--steps", "2", "--top", "3", "--out", png];

    [Test]
    public void Finalize_WithoutDamping_UsesTheStoresMethodsDefault_AndDampingOverridesIt()
    {
        string store = CopyStore();
        Assert.That(CliApp.Run(["finalize", "--store", store, "--json"]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var chosen = System.Text.Json.Nodes.JsonNode.Parse(_stdout.ToString())!;
        Assert.That(chosen["relativeDamping"]!.GetValue<double>(), Is.EqualTo(Core.Attribution.Methods.LdsChosenDamping.Trak), "the store is a trak store");
        _stdout.GetStringBuilder().Clear();
        Assert.That(CliApp.Run(["finalize", "--store", store, "--damping", "1e-3", "--json"]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var given = System.Text.Json.Nodes.JsonNode.Parse(_stdout.ToString())!;
        Assert.That(given["relativeDamping"]!.GetValue<double>(), Is.EqualTo(1e-3));
        Assert.That(given["lambda"]!.GetValue<double>(), Is.LessThan(chosen["lambda"]!.GetValue<double>()), "the absolute λ scales with the relative one");
    }

    [Test]
    public void Featurize_RecordsEveryModelFileAQueryReads()
    {
        var meta = StoreMeta.Load(Path.Combine(_store, StoreFiles.Meta));
        Assert.That(meta.ModelFiles.Keys, Is.EquivalentTo(new[] { "forward.onnx", "vjp.onnx", "model.json" }));
        Assert.That(meta.ModelFiles["forward.onnx"], Is.EqualTo(StoreMeta.FingerprintFile(Path.Combine(ShippedModel(), "forward.onnx"))));
    }

    [Test]
    public void Attribute_AnotherModelsForwardOnnxInTheFolder_ExitsTwoNamingIt()
    {
        string model = CopyModel();
        // The same architecture at another training step: the gradient graph vjp.onnx is unchanged, the weights are not.
        File.Copy(Path.Combine(ShippedModel(), "checkpoints", "step-2000", "forward.onnx"), Path.Combine(model, "forward.onnx"), overwrite: true);
        string png = Path.Combine(_dir, "a.png");

        int code = CliApp.Run(Attribute(_store, model, png));

        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain(Path.Combine(model, "forward.onnx")).And.Contain("SHA-256"));
        Assert.That(File.Exists(png), Is.False);
    }

    [Test]
    public void Attribute_ModelJsonEdited_ExitsTwoNamingIt()
    {
        string model = CopyModel();
        File.AppendAllText(Path.Combine(model, "model.json"), " ");

        int code = CliApp.Run(Attribute(_store, model, Path.Combine(_dir, "a.png")));

        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain(Path.Combine(model, "model.json")));
    }

    [Test]
    public void Verify_IntactStore_ExitsZeroWithEveryCheckInTheJson()
    {
        int code = CliApp.Run(["verify", "--store", _store, "--model", ShippedModel(), "--json"]);

        Assert.That(code, Is.EqualTo(CliApp.Ok), _stdout + _stderr.ToString());
        using var json = JsonDocument.Parse(_stdout.ToString());
        Assert.That(json.RootElement.GetProperty("ok").GetBoolean(), Is.True);
        var checks = json.RootElement.GetProperty("stores")[0].GetProperty("checks").EnumerateArray().Select(c => c.GetProperty("check").GetString()).ToList();
        Assert.That(checks, Is.SupersetOf(new[] { "open", "chunks", "finite", "checksum", "factor", "model fingerprint", "model files" }));
    }

    [Test]
    public void Verify_ByteOfARowChanged_ExitsThreeNamingFileAndRows()
    {
        string store = CopyStore();
        string features = Path.Combine(store, StoreFiles.Features);
        using (var f = new FileStream(features, FileMode.Open))
        {
            f.Position = NpyFormat.ReadHeader(features).DataOffset + (9 * 64 * sizeof(float)) + 5;
            int b = f.ReadByte();
            f.Position--;
            f.WriteByte((byte)(b ^ 0x01));
        }

        int code = CliApp.Run(["verify", "--store", store]);

        Assert.That(code, Is.EqualTo(CliApp.CheckFailed), _stdout + _stderr.ToString());
        Assert.That(_stdout.ToString(), Does.Contain($"FAIL  {features}  chunks").And.Contain("rows 0–11"));
        // And a query refuses the store rather than ranking with the changed row.
        Assert.That(CliApp.Run(Attribute(store, ShippedModel(), Path.Combine(_dir, "a.png"))), Is.EqualTo(CliApp.BadInput));
    }

    [Test]
    public void Attribute_NaNInPreconditioner_ExitsTwoNamingIt()
    {
        string store = CopyStore();
        string pre = Path.Combine(store, StoreFiles.Preconditioner);
        using (var f = new FileStream(pre, FileMode.Open))
        {
            f.Position = 64 + (3 * sizeof(double));
            f.Write(BitConverter.GetBytes(double.NaN));
        }

        int code = CliApp.Run(Attribute(store, ShippedModel(), Path.Combine(_dir, "a.png")));

        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain(pre));
    }

    [Test]
    public void Verify_MissingFolder_ExitsTwo()
    {
        Assert.That(CliApp.Run(["verify", "--store", Path.Combine(_dir, "nothing")]), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("--store"));
    }

    [Test]
    public void Scores_NaNPixelInTheQuery_RefusedNamingTheQuery()
    {
        using var scorer = TrakScorer.Open(_store, ShippedModel());
        var image = new float[scorer.Model.Metadata.Channels * scorer.Model.Metadata.ImageSize * scorer.Model.Metadata.ImageSize];
        image[17] = float.NaN;

        var e = Assert.Throws<UserInputException>(() => scorer.Scores(image, 1))!;

        Assert.That(e.Message, Does.Contain("query 0").And.Contain("non-finite"));
    }

    [Test]
    public void Scores_NaNRowOutsideTheSampledWindows_RefusedNamingTheRow()
    {
        // A store whose checksums and preconditioner fingerprint are consistent with a NaN row (as a featurizer that wrote one
        // would leave it): 9000 rows of k = 64 (2.3 MB, more than the preconditioner fingerprint's 16 × 64 KiB samples).
        var meta = StoreMeta.Load(Path.Combine(_store, StoreFiles.Meta)) with { Rows = 9000 };
        const long bad = 4420; // bytes 1131648…: between the 8th and 9th 64 KiB window of the fingerprint
        var random = new Random(5);
        var rows = new float[9000 * 64];
        for (int i = 0; i < rows.Length; i++)
        {
            rows[i] = (float)((random.NextDouble() * 2) - 1);
        }
        string clean = Path.Combine(_dir, "clean"), damaged = Path.Combine(_dir, "damaged");
        using (var w = FeatureStoreWriter.Create(clean, meta))
        {
            w.WriteRows(0, 9000, rows);
            w.Complete().Dispose();
        }
        PreconditionerBuilder.Finalize(clean, 1e-3);
        rows[(bad * 64) + 10] = float.NaN;
        using (var w = FeatureStoreWriter.Create(damaged, meta))
        {
            w.WriteRows(0, 9000, rows);
            using var store = w.Complete();
            File.Copy(Path.Combine(clean, StoreFiles.Preconditioner), Path.Combine(damaged, StoreFiles.Preconditioner));
            StoreChecksums.RecordFiles(store, replace: true, StoreFiles.Preconditioner);
        }
        Assert.That(PreconditionerBuilder.StoreFingerprint(damaged), Is.EqualTo(PreconditionerBuilder.StoreFingerprint(clean)), "the NaN row lies outside the sampled windows");
        using var scorer = TrakScorer.Open(damaged, ShippedModel());
        var image = new float[scorer.Model.Metadata.Channels * scorer.Model.Metadata.ImageSize * scorer.Model.Metadata.ImageSize];

        var e = Assert.Throws<StoreFormatException>(() => scorer.Scores(image, 1))!;

        Assert.That(e.Message, Does.Contain(Path.Combine(damaged, StoreFiles.Features)).And.Contain($"row {bad}").And.Contain("verify"));
    }
}
