using System.Text.Json.Nodes;
using OnnxAttribution.Store;

namespace OnnxAttribution.Cli.Tests;

/// <summary>Bad options and files: exit 2 before any work, the option or file named, nothing partial left behind.</summary>
public sealed partial class CliTests
{
    [TestCase("--top", "-1")]
    [TestCase("--top", "0")]
    [TestCase("--scale", "0")]
    [TestCase("--scale", "1000")]
    [TestCase("--threads", "-4")]
    [TestCase("--count", "0")]
    [TestCase("--count", "100000")]
    [TestCase("--steps", "0")]
    public void Attribute_OptionOutOfRange_ExitsTwoNamingItBeforeOpeningTheStore(string option, string value)
    {
        var png = Path.Combine(_dir, "a.png");

        int code = CliApp.Run(["attribute", "--store", Path.Combine(_dir, "no-store"), "--seed", "0", option, value, "--out", png]);

        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain($"{option} {value}:").And.Not.Contain("no-store"));
        Assert.That(Directory.GetFileSystemEntries(_dir), Is.Empty);
    }

    [TestCase("--dim", "0")]
    [TestCase("--dim", "100000000")]
    [TestCase("--timesteps", "0")]
    [TestCase("--batch-size", "0")]
    [TestCase("--noise-draws", "0")]
    [TestCase("--threads", "-1")]
    [TestCase("--damping", "-1")]
    [TestCase("--damping", "NaN")]
    [TestCase("--size", "0")]
    public void Featurize_OptionOutOfRange_ExitsTwoNamingItAndWritesNothing(string option, string value)
    {
        var store = Path.Combine(_dir, "s");

        int code = CliApp.Run(["featurize", "--model", FindShippedModel(), "--subset", "0:4", option, value, "--out", store]);

        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain($"{option} {value}:"));
        Assert.That(Directory.Exists(store), Is.False);
    }

    [Test]
    public void Featurize_SettingTheLibraryRefuses_NamedByItsFlag()
    {
        // DasMethod refuses the factored projector with a SettingException naming 'Projector'; the command line says --projector.
        var store = Path.Combine(_dir, "s");

        int code = CliApp.Run(["featurize", "--model", FindShippedModel(), "--subset", "0:4", "--method", "das", "--projector", "factored", "--out", store]);

        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain("error: --projector factored: das normalises each timestep's whole gradient")
            .And.Contain("; use --projector dense"));
        Assert.That(_stderr.ToString(), Does.Not.Contain("Projector ="));
    }

    [TestCase("pixel", "--timesteps", "5", "--timesteps")]
    [TestCase("random", "--dim", "64", "--dim")]
    [TestCase("trak", "--pixel-metric", "l2", "--pixel-metric")]
    [TestCase("d-trak", "--method-seed", "3", "--method-seed")]
    [TestCase("trak", "--damping", "0.1", "--damping (trak and d-trak take it at 'finalize --damping')")]
    [TestCase("kfac", "--projector", "factored", "--projector")]
    [TestCase("das", "--dtype", "float16", null)]
    public void Featurize_OptionTheMethodWouldIgnore_IsRefusedByItsFlag(string method, string option, string value, string? flag)
    {
        var store = Path.Combine(_dir, "s");

        string[] small = method is "pixel" or "random" ? [] : ["--timesteps", "1", "--dim", "16"];
        int code = CliApp.Run(["featurize", "--model", FindShippedModel(), "--subset", "0:4", .. small, "--method", method, option, value, "--out", store]);

        if (flag is null)
        {
            // A setting the method does read: built as usual.
            Assert.That(code, Is.EqualTo(CliApp.Ok), _stderr.ToString());
            return;
        }
        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain($"error: {flag}: method {method} does not use it; leave it out"));
        Assert.That(Directory.Exists(store), Is.False);
    }

    [Test]
    public void Lds_DasWithTheFactoredProjector_RefusedBeforeAnyTraining()
    {
        var outDir = Path.Combine(_dir, "lds");

        int code = CliApp.Run(["lds", "--methods", "d-trak,das", "--projector", "factored", "--out", outDir]);

        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain("--projector factored: das normalises each timestep's whole gradient"));
        Assert.That(Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any(), Is.False, "nothing trained or written");
    }

    [Test]
    public void Featurize_MoreTimestepsThanTheModelHas_ExitsTwoNamingTheRange()
    {
        int code = CliApp.Run(["featurize", "--model", FindShippedModel(), "--subset", "0:4", "--timesteps", "5000", "--out", Path.Combine(_dir, "s")]);

        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain("timesteps 5000").And.Contain("1 to 1000"));
    }

    [TestCase("10:10")]
    [TestCase("1000000:")]
    public void Featurize_EmptySubset_ExitsTwoNamingIt(string subset)
    {
        int code = CliApp.Run(["featurize", "--model", FindShippedModel(), "--subset", subset, "--out", Path.Combine(_dir, "s")]);

        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain($"subset '{subset}'"));
    }

    [TestCase("finalize", "--store", "--damping", "-1")]
    [TestCase("generate", "--model", "--scale", "0")]
    [TestCase("generate", "--model", "--eta", "-0.5")]
    [TestCase("train", "--out", "--lr", "0")]
    [TestCase("train", "--out", "--ema", "1")]
    [TestCase("train-ensemble", "--out", "--members", "1")]
    [TestCase("influential", "--stores", "--fraction", "1.5")]
    [TestCase("check-gradients", "--model", "--batch-sizes", "0")]
    [TestCase("export", "--checkpoint", "--step", "-1")]
    public void Verb_OptionOutOfRange_ExitsTwoNamingIt(string verb, string pathOption, string option, string value)
    {
        string[] args = [verb, pathOption, Path.Combine(_dir, "x"), option, value];
        if (verb is "generate" or "export")
        {
            args = [.. args, "--out", Path.Combine(_dir, "o")];
        }

        int code = CliApp.Run(args);

        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain($"{option} {value}:"));
    }

    [Test]
    public void Influential_MoreSeedsThanOneRunTakes_ExitsTwoBeforeAllocatingThem()
    {
        int code = CliApp.Run(["influential", "--stores", Path.Combine(_dir, "s"), "--seeds", "0:2000000000"]);

        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain("--seeds '0:2000000000': 2000000000 queries"));
    }

    [TestCase("lds", "alpha", "1")]
    [TestCase("lds", "subset-models", "0")]
    [TestCase("lds", "queries", "0")]
    [TestCase("counterfactual", "remove-top", "0")]
    [TestCase("counterfactual", "queries", "0")]
    public void Evaluation_OptionOutOfRange_ExitsTwoNamingIt(string verb, string option, string value)
    {
        string[] store = verb == "counterfactual" ? ["--store", Path.Combine(_dir, "s")] : [];
        int code = CliApp.Run([verb, "--out", Path.Combine(_dir, "e"), .. store, $"--{option}", value]);

        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain($"--{option} {value}:"));
        Assert.That(Directory.Exists(Path.Combine(_dir, "e")), Is.False);
    }

    [Test]
    public void Run_EveryVerb_ChecksItsOptionsFirst()
    {
        var verbs = typeof(CliApp).Assembly.GetTypes().Where(t => t.GetCustomAttributes(typeof(CommandLine.VerbAttribute), false).Length > 0).ToList();

        Assert.That(verbs, Has.Count.GreaterThan(10));
        Assert.That(verbs.Where(t => !typeof(IVerbOptions).IsAssignableFrom(t)).Select(t => t.Name), Is.Empty);
    }

    [TestCase("generate")]
    [TestCase("attribute")]
    [TestCase("differentiate")]
    public void Verb_OutputPathIsADirectory_ExitsTwoNamingItAndLeavesNoTemporary(string verb)
    {
        var outDir = Path.Combine(_dir, "out");
        Directory.CreateDirectory(outDir);
        string[] args = verb switch
        {
            "generate" => ["generate", "--model", FindShippedModel(), "--steps", "2", "--out", outDir],
            "attribute" => ["attribute", "--store", Path.Combine(_dir, "none"), "--seed", "0", "--out", outDir],
            _ => ["differentiate", "--model", Path.Combine(_dir, "m.onnx"), "--wrt-initializers", "--out", outDir],
        };

        int code = CliApp.Run(args);

        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain($"--out {outDir}: is a directory"));
        Assert.That(Directory.GetFileSystemEntries(_dir).Select(Path.GetFileName), Is.EqualTo(new[] { "out" }));
    }

    [Test]
    public void Generate_OutputFileReadOnly_ExitsTwoNamingIt()
    {
        var png = Path.Combine(_dir, "g.png");
        File.WriteAllBytes(png, [1, 2, 3]);
        File.SetAttributes(png, FileAttributes.ReadOnly);

        int code = CliApp.Run(["generate", "--model", FindShippedModel(), "--steps", "2", "--out", png]);

        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain($"--out {png}: the file is read-only"));
        Assert.That(File.ReadAllBytes(png), Is.EqualTo(new byte[] { 1, 2, 3 }));
    }

    [Test]
    public void Generate_ModelWithZeroTimesteps_ExitsTwoNamingTheField()
    {
        var model = Path.Combine(_dir, "m");
        Directory.CreateDirectory(model);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(FindShippedModel(), "model.json")))!.AsObject();
        json["schedule"]!["timesteps"] = 0;
        File.WriteAllText(Path.Combine(model, "model.json"), json.ToJsonString());

        int code = CliApp.Run(["generate", "--model", model, "--out", Path.Combine(_dir, "g.png")]);

        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain(Path.Combine(model, "model.json")).And.Contain("'schedule.timesteps'"));
        Assert.That(File.Exists(Path.Combine(_dir, "g.png")), Is.False);
    }

    [Test]
    public void Inspect_MetaWithMalformedFingerprint_ExitsTwoNamingTheFileAndField()
    {
        var store = Path.Combine(_dir, "s");
        WriteTinyStore(store);
        var metaPath = Path.Combine(store, StoreFiles.Meta);
        var json = JsonNode.Parse(File.ReadAllText(metaPath))!.AsObject();
        json["modelFingerprint"] = "abc";
        File.WriteAllText(metaPath, json.ToJsonString());

        int code = CliApp.Run(["inspect", "--store", store]);

        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain(metaPath).And.Contain("'modelFingerprint'"));
    }

    [Test]
    public void Finalize_PreconditionerPathIsADirectory_ExitsTwoNamingItBeforeTheWork()
    {
        var store = Path.Combine(_dir, "s");
        WriteTinyStore(store);
        var pre = Path.Combine(store, "preconditioner.bin");
        Directory.CreateDirectory(pre);

        int code = CliApp.Run(["finalize", "--store", store]);

        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain($"{pre}: is a directory"));
        Assert.That(Directory.GetFileSystemEntries(store).Select(Path.GetFileName), Has.None.EndsWith(".tmp"));
    }

    [Test]
    public void Featurize_StoreHeldByAnotherWriter_ExitsTwoNamingTheHolder()
    {
        var store = Path.Combine(_dir, "s");
        using var holder = StoreLock.Acquire(store, "featurize");

        int code = CliApp.Run(["featurize", "--model", FindShippedModel(), "--subset", "0:4", "--dim", "16", "--timesteps", "1", "--out", store]);

        Assert.That(code, Is.EqualTo(CliApp.BadInput), _stderr.ToString());
        Assert.That(_stderr.ToString(), Does.Contain("another writer holds the store").And.Contain($"pid {Environment.ProcessId}"));
        Assert.That(File.Exists(Path.Combine(store, StoreFiles.Features)), Is.False);
    }

    [Test]
    public void Attribute_TopBeyondTheStore_CappedAtItsRows()
    {
        var store = Path.Combine(_dir, "pixel");
        Assert.That(CliApp.Run(["featurize", "--model", FindShippedModel(), "--method", "pixel", "--subset", "0:6", "--out", store]), Is.EqualTo(CliApp.Ok), _stderr.ToString());

        int code = CliApp.Run(["attribute", "--store", store, "--seed", "3", "--steps", "2", "--top", "2000000000", "--json", "--out", Path.Combine(_dir, "a.png")]);

        Assert.That(code, Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var stdout = _stdout.ToString();
        using var json = System.Text.Json.JsonDocument.Parse(stdout[stdout.LastIndexOf("{\n  \"store\"", StringComparison.Ordinal)..]);
        Assert.That(json.RootElement.GetProperty("rankings")[0].GetProperty("top").GetArrayLength(), Is.EqualTo(6));
    }

    [Test]
    public void Attribute_ScanOnnx_SameRankingAsTheSimdScan()
    {
        var store = Path.Combine(_dir, "dtrak");
        Assert.That(CliApp.Run(["featurize", "--model", FindShippedModel(), "--method", "d-trak", "--subset", "0:12", "--timesteps", "1",
            "--dim", "64", "--out", store]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(CliApp.Run(["finalize", "--store", store]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        string Ranking(params string[] extra)
        {
            _stdout.GetStringBuilder().Clear();
            int code = CliApp.Run(["attribute", "--store", store, "--seed", "3", "--steps", "2", "--top", "5", "--json", "--out", Path.Combine(_dir, "a.png"), .. extra]);
            Assert.That(code, Is.EqualTo(CliApp.Ok), _stderr.ToString());
            var stdout = _stdout.ToString();
            using var json = System.Text.Json.JsonDocument.Parse(stdout[stdout.LastIndexOf("{\n  \"store\"", StringComparison.Ordinal)..]);
            return string.Join(",", json.RootElement.GetProperty("rankings")[0].GetProperty("top").EnumerateArray().Select(r => r.GetProperty("index").GetInt64()));
        }

        string simd = Ranking("--scan", "simd");

        Assert.That(Ranking("--scan", "onnx"), Is.EqualTo(simd));
        Assert.That(Ranking("--reduce", "device"), Is.EqualTo(simd), "query features summed and projected in the graph");
        Assert.That(simd.Split(','), Has.Length.EqualTo(5));
    }

    /// <summary>A complete 3-row store written through the library (no model needed).</summary>
    private static void WriteTinyStore(string directory)
    {
        var meta = new StoreMeta
        {
            ModelFingerprint = new string('a', 64),
            Method = "trak",
            Measurement = "diffusion-loss",
            Timesteps = [0],
            NoiseDraws = 1,
            NoiseSeed = 0,
            Projector = new ProjectorSpec("dense", 0, 2),
            DType = StoreDType.Float32,
            Rows = 3,
            DatasetFingerprint = new string('d', 64),
        };
        using var writer = FeatureStoreWriter.Create(directory, meta);
        writer.WriteRows(0, 3, [1, 2, 3, 4, 5, 6]);
        writer.Complete().Dispose();
    }
}
