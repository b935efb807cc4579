using System.Text.Json;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Imaging;

namespace OnnxAttribution.Edge.Tests;

/// <summary>
/// The edge tool's <c>attribute</c> against a small D-TRAK store of the shipped model, built once with the library;
/// its rankings are checked against the library's.
/// </summary>
[TestFixture]
public sealed class EdgeAppTests
{
    private string _dir = "";
    private string _model = "";
    private string _store = "";
    private ImageDataset _data = null!;

    [OneTimeSetUp]
    public void BuildStore()
    {
        _dir = Directory.CreateTempSubdirectory("oa-edge-").FullName;
        _model = Path.Combine(RepositoryRoot(), "models", "fm16");
        _store = Path.Combine(_dir, "dtrak");
        _data = new DatasetLocator().Load("embedded", "0:32", 16);
        Attributor.BuildStore(new StoreBuildOptions
        {
            Method = "d-trak",
            ModelDirectory = _model,
            Data = "embedded",
            Subset = "0:32",
            StoreDirectory = _store,
            Settings = new MethodSettings { Timesteps = 2, Dim = 256 },
        });
    }

    [OneTimeTearDown]
    public void Remove() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void Attribute_FolderOfPngs_JsonRanksAsTheLibraryAndWritesTheGrid()
    {
        var folder = Directory.CreateDirectory(Path.Combine(_dir, "queries")).FullName;
        PngImage.Write(Path.Combine(folder, "a.png"), _data.Image(4), 1, 16, 16);
        PngImage.Write(Path.Combine(folder, "b.png"), _data.Image(19), 1, 16, 16);
        var grid = Path.Combine(_dir, "grid.png");

        var (code, stdout, stderr) = Run("attribute", "--model", _model, "--store", _store, "--image", folder, "--top", "3", "--out", grid, "--json");

        Assert.That(code, Is.EqualTo(EdgeApp.Ok), stderr);
        using var json = JsonDocument.Parse(stdout);
        var rankings = json.RootElement.GetProperty("rankings");
        using var attributor = Attributor.Open(_model, _store);
        var expected = attributor.Attribute(new[] { "a.png", "b.png" }.Select(f => attributor.ReadPng(Path.Combine(folder, f))).ToList(), 3);
        Assert.That(json.RootElement.GetProperty("method").GetString(), Is.EqualTo("d-trak"));
        Assert.That(json.RootElement.GetProperty("rows").GetInt64(), Is.EqualTo(32));
        for (int q = 0; q < 2; q++)
        {
            var top = rankings[q].GetProperty("top").EnumerateArray().ToList();
            Assert.That(rankings[q].GetProperty("query").GetString(), Is.EqualTo(expected[q].Query));
            Assert.That(top.Select(t => t.GetProperty("index").GetInt64()), Is.EqualTo(expected[q].Top.Select(r => r.Index)));
            Assert.That(top.Select(t => t.GetProperty("score").GetSingle()), Is.EqualTo(expected[q].Top.Select(r => r.Score)));
        }
        Assert.That(expected[0].Top[0].Index, Is.EqualTo(4));
        Assert.That(File.Exists(grid), Is.True);
    }

    // The parser's messages (CommandLineParser, as the CLI's) name the option; the range checks after it name option and value.
    [TestCase("Required option 'model' is missing.", "attribute", "--store", "x", "--image", "y.png")]
    [TestCase("--top 0: expected a whole number ≥ 1", "attribute", "--model", "m", "--store", "s", "--image", "i", "--top", "0")]
    [TestCase("--threads -1: expected a whole number ≥ 0", "attribute", "--model", "m", "--store", "s", "--image", "i", "--threads", "-1")]
    [TestCase("Option 'model' is defined multiple times.", "attribute", "--model", "m", "--model", "m")]
    [TestCase("Option 'sed' is unknown.", "attribute", "--sed", "1")]
    [TestCase("Required option 'model' is missing.", "attribute", "--model")]
    [TestCase("Option 'label' is defined with a bad format.", "attribute", "--model", "m", "--store", "s", "--image", "i", "--label", "x")]
    [TestCase("Verb 'featurize' is not recognized.", "featurize")]
    [TestCase("No verb selected.")]
    public void Run_BadArguments_ExitsTwoNamingTheOption(string message, params string[] args)
    {
        var (code, stdout, stderr) = Run(args);
        Assert.That(code, Is.EqualTo(EdgeApp.BadInput));
        Assert.That(stderr, Does.Contain(message));
        Assert.That(stdout, Is.Empty);
    }

    [TestCase("--help")]
    [TestCase("help")]
    [TestCase("attribute", "--help")]
    [TestCase("--version")]
    public void Run_HelpOrVersion_ExitsZeroWritingToStderr(params string[] args)
    {
        var (code, stdout, stderr) = Run(args);
        Assert.That(code, Is.EqualTo(EdgeApp.Ok));
        Assert.That(stdout, Is.Empty);
        // The heading (program and version) comes from the entry assembly: the test host's here.
        string expected = args.Length > 1 ? "--model" : args[0] == "--version" ? "" : "verify";
        Assert.That(stderr, Does.Contain(expected).And.Not.Empty);
    }

    [Test]
    public void Attribute_ConditionForAnUnconditionalModel_ExitsTwoNamingTheOption()
    {
        var png = Path.Combine(_dir, "c.png");
        PngImage.Write(png, _data.Image(2), 1, 16, 16);
        foreach (var (option, value) in new[] { ("--prompt", "a dark sneaker"), ("--label", "3") })
        {
            var (code, stdout, stderr) = Run("attribute", "--model", _model, "--store", _store, "--image", png, option, value, "--out", "-");
            Assert.That(code, Is.EqualTo(EdgeApp.BadInput), stdout);
            Assert.That(stderr, Does.Contain($"{option}: the model is unconditional"));
        }
    }

    [Test]
    public void Attribute_MissingImage_ExitsTwoNamingIt()
    {
        var missing = Path.Combine(_dir, "nope.png");
        var (code, _, stderr) = Run("attribute", "--model", _model, "--store", _store, "--image", missing);
        Assert.That(code, Is.EqualTo(EdgeApp.BadInput));
        Assert.That(stderr, Does.Contain(missing));
    }

    [Test]
    public void Verify_SoundStore_ExitsZeroHavingReadEveryRow()
    {
        var (code, stdout, stderr) = Run("verify", "--model", _model, "--store", _store, "--json");

        Assert.That(code, Is.EqualTo(EdgeApp.Ok), stdout + stderr);
        using var json = JsonDocument.Parse(stdout);
        Assert.That(json.RootElement.GetProperty("rowsChecked").GetInt64(), Is.EqualTo(32));
        Assert.That(json.RootElement.GetProperty("problems").GetArrayLength(), Is.Zero);
    }

    [Test]
    public void Verify_NaNInTheLastRow_ExitsThreeSayingTheFeaturesChanged()
    {
        var copy = Path.Combine(_dir, "damaged");
        Directory.CreateDirectory(copy);
        foreach (var file in Directory.GetFiles(_store))
        {
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        }
        // The last 4 bytes of features.npy are the last row's last float32 feature.
        using (var features = File.OpenWrite(Path.Combine(copy, "features.npy")))
        {
            features.Seek(-4, SeekOrigin.End);
            features.Write(BitConverter.GetBytes(float.NaN));
        }

        var (code, stdout, stderr) = Run("verify", "--model", _model, "--store", copy);

        // featurize recorded a checksum per chunk of rows: opening the store already tells, naming the file and rows.
        Assert.That(code, Is.EqualTo(EdgeApp.CheckFailed), stderr);
        Assert.That(stdout, Does.Contain("features.npy: rows 0–31").And.Contain("do not match their checksum")
            .And.Contain("FAILED"));
    }

    [Test]
    public void Verify_MissingStoreFolder_ExitsTwo()
    {
        var (code, _, stderr) = Run("verify", "--model", _model, "--store", Path.Combine(_dir, "none"));
        Assert.That(code, Is.EqualTo(EdgeApp.BadInput));
        Assert.That(stderr, Does.Contain("--store").And.Contain("none"));
    }

    [Test]
    public void EdgeAssembly_Dependencies_NeitherTrainingNorTorchSharp()
    {
        // The whole dependency closure the tool ships with, not only its direct references.
        string deps = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "onnx-attribution-edge.deps.json"));
        Assert.That(deps, Does.Contain("OnnxAttribution.Core").And.Contain("Microsoft.ML.OnnxRuntime"));
        Assert.That(deps, Does.Not.Contain("TorchSharp").And.Not.Contain("libtorch").And.Not.Contain("OnnxAttribution.Training"));
    }

    private static (int Code, string Stdout, string Stderr) Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = EdgeApp.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private static string RepositoryRoot() => RepositoryFiles.Root;
}
