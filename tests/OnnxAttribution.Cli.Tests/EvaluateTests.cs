using System.Text.Json.Nodes;
using OnnxAttribution.Store;

namespace OnnxAttribution.Cli.Tests;

/// <summary>
/// 'lds' and 'counterfactual' end to end at toy size (a few models trained for a few steps): the
/// files a user reads are written, reruns continue from what is saved, and changed settings are refused by name.
/// </summary>
[TestFixture]
[Category("Slow")] // trains about twenty toy models: minutes on 2 cores
[NonParallelizable] // redirects the process's console
public sealed class EvaluateTests
{
    private string _dir = "";
    private TextWriter _out = null!;
    private TextWriter _err = null!;
    private StringWriter _stderr = null!;

    [OneTimeSetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("oa-eval-").FullName;
        (_out, _err) = (Console.Out, Console.Error);
        _stderr = new StringWriter();
        Console.SetOut(new StringWriter());
        Console.SetError(_stderr);
        _firstRun = CliApp.Run(Lds());
    }

    private int _firstRun;

    [OneTimeTearDown]
    public void TearDown()
    {
        Console.SetOut(_out);
        Console.SetError(_err);
        _stderr.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private string[] Lds(string alpha = "0.5") =>
    [
        "lds", "--subset", "0:24", "--subset-models", "3", "--subset-seeds", "2", "--alpha", alpha, "--steps", "8", "--batch-size", "8",
        "--queries", "2", "--validation-queries", "2", "--damping-grid", "1e-3,1e-1", "--methods", "trak,random", "--measure-timesteps", "4", "--measure-draws", "1", "--timesteps", "2", "--dim", "64",
        "--sampling-steps", "4", "--out", Path.Combine(_dir, "lds"),
    ];

    [Test]
    public void Lds_Combinations_ScoreTheStandardisedMeanOfTheMethods_FromTheirSavedScores()
    {
        Assert.That(_firstRun, Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var lds = Path.Combine(_dir, "lds");
        var scores = Path.Combine(lds, "scores", "trak.npy");
        var stamp = File.GetLastWriteTimeUtc(scores);
        Assert.That(CliApp.Run([.. Lds(), "--combinations", "trak+random"]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(File.GetLastWriteTimeUtc(scores), Is.EqualTo(stamp), "the methods' scores are reused, not recomputed");
        var methods = JsonNode.Parse(File.ReadAllText(Path.Combine(lds, "lds.json")))!["methods"]!.AsArray();
        var combined = methods.Single(m => m!["method"]!.GetValue<string>() == "trak+random")!;
        var (trak, random) = (methods.Single(m => m!["method"]!.GetValue<string>() == "trak")!, methods.Single(m => m!["method"]!.GetValue<string>() == "random")!);
        Assert.That(combined["perQuery"]!.AsArray(), Has.Count.EqualTo(2));
        Assert.That(combined["validationLds"]!.GetValue<double>(), Is.InRange(-1.0, 1.0));
        Assert.That(combined["costs"]!["buildSecondsPerExample"]!.GetValue<double>(),
            Is.EqualTo(trak["costs"]!["buildSecondsPerExample"]!.GetValue<double>() + random["costs"]!["buildSecondsPerExample"]!.GetValue<double>()).Within(1e-9));

        Assert.That(CliApp.Run([.. Lds(), "--combinations", "trak+das"]), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("--combinations trak+das"));
    }

    [Test]
    public void Lds_ToySize_WritesResultsAndRerunsFromSavedFiles()
    {
        Assert.That(_firstRun, Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var lds = Path.Combine(_dir, "lds");
        var result = JsonNode.Parse(File.ReadAllText(Path.Combine(lds, "lds.json")))!;
        Assert.That(result["subsetModels"]!.GetValue<int>(), Is.EqualTo(3));
        Assert.That(result["methods"]![0]!["method"]!.GetValue<string>(), Is.EqualTo("trak"));
        Assert.That(result["methods"]![0]!["perQuery"]!.AsArray(), Has.Count.EqualTo(2));
        Assert.That(File.Exists(Path.Combine(lds, "queries.png")), Is.True);
        Assert.That(Directory.GetDirectories(Path.Combine(lds, "subsets"), "model-*").Where(d => !d.EndsWith("-run", StringComparison.Ordinal)).Select(Path.GetFileName).Order(),
            Is.EqualTo(new[] { "model-000", "model-000-seed-1", "model-001", "model-001-seed-1", "model-002", "model-002-seed-1" }), "3 subsets × 2 seeds");
        // The damping is chosen on the validation queries from the grid; the ceiling and the command line are reported.
        var trak = result["methods"]![0]!;
        Assert.That(trak["damping"]!.GetValue<double>(), Is.AnyOf(1e-3, 1e-1));
        Assert.That(trak["dampingSweep"]!.AsArray(), Has.Count.EqualTo(2));
        Assert.That(trak["dampingSweep"]!.AsArray().Single(p => p!["damping"]!.GetValue<double>() == trak["damping"]!.GetValue<double>())!["validationLds"]!.GetValue<double>(),
            Is.EqualTo(trak["validationLds"]!.GetValue<double>()));
        Assert.That(result["methods"]![1]!["damping"], Is.Null, "random has no damping");
        Assert.That(result["ceiling"]!["splits"]!.GetValue<int>(), Is.EqualTo(1));
        Assert.That(result["ceiling"]!["perQuery"]!.AsArray(), Has.Count.EqualTo(2));
        Assert.That(result["command"]!.GetValue<string>(), Does.StartWith("onnx-attribution lds").And.Contain("--subset-seeds 2"));
        Assert.That(trak["command"]!.GetValue<string>(), Is.EqualTo(result["command"]!.GetValue<string>()));
        Assert.That(NpyFormat.ReadMatrix(Path.Combine(lds, "measured", "loss-seed-1.npy")).Header.Columns, Is.EqualTo(2 + 2), "test and validation queries");
        var markdown = File.ReadAllText(Path.Combine(lds, "lds.md"));
        Assert.That(markdown, Does.Contain("Noise ceiling").And.Contain("validation LDS (%) at λ").And.Contain("| trak |"));
        File.Delete(Path.Combine(lds, "lds.md"));
        Assert.That(CliApp.Run(["lds", "--report-only", "--out", lds]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(File.ReadAllText(Path.Combine(lds, "lds.md")), Is.EqualTo(markdown), "lds.md is generated from lds.json alone");
        var scores = Path.Combine(lds, "scores", "trak.npy");
        var stamp = File.GetLastWriteTimeUtc(scores);
        var model = File.GetLastWriteTimeUtc(Path.Combine(lds, "subsets", "model-000", "forward.onnx"));

        Assert.That(CliApp.Run(Lds()), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(File.GetLastWriteTimeUtc(scores), Is.EqualTo(stamp), "scores are reused");
        Assert.That(File.GetLastWriteTimeUtc(Path.Combine(lds, "subsets", "model-000", "forward.onnx")), Is.EqualTo(model), "models are reused");
        Assert.That(JsonNode.Parse(File.ReadAllText(Path.Combine(lds, "lds.json")))!["methods"]![0]!["lds"]!.GetValue<double>(),
            Is.EqualTo(result["methods"]![0]!["lds"]!.GetValue<double>()));

        // Scores lost but the store kept: scored again at the chosen damping, the same LDS.
        File.Delete(Path.Combine(lds, "scores", "trak.npy"));
        Assert.That(CliApp.Run(Lds()), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(JsonNode.Parse(File.ReadAllText(Path.Combine(lds, "lds.json")))!["methods"]![0]!["lds"]!.GetValue<double>(),
            Is.EqualTo(result["methods"]![0]!["lds"]!.GetValue<double>()));

        // Scores recorded from another store (another --ensemble folder, say) are not reused.
        var timing = Path.Combine(lds, "scores", "trak.json");
        var node = JsonNode.Parse(File.ReadAllText(timing))!;
        Assert.That(node["store"]!.GetValue<string>(), Is.EqualTo(Path.GetFullPath(Path.Combine(lds, "stores", "trak"))));
        node["store"] = "/elsewhere/trak";
        File.WriteAllText(timing, node.ToJsonString());
        var before = File.GetLastWriteTimeUtc(scores);
        Assert.That(CliApp.Run(Lds()), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(File.GetLastWriteTimeUtc(scores), Is.GreaterThan(before), "scored again");
        Assert.That(JsonNode.Parse(File.ReadAllText(timing))!["store"]!.GetValue<string>(), Does.Not.StartWith("/elsewhere"));
    }

    [Test]
    public void Lds_TwoReferenceModels_ScoresAreTheMeanOfTheirStores_AndCurvesShowEveryPoint()
    {
        var lds = Path.Combine(_dir, "lds-r2");
        // The toy run's arguments into its own folder, each (option, value) pair of extra replacing or adding one.
        string[] Run(params string[] extra)
        {
            var args = Lds().Take(Lds().Length - 1).Append(lds).ToList();
            for (int i = 0; i + 1 < extra.Length; i += 2)
            {
                int at = args.IndexOf(extra[i]);
                if (at >= 0)
                {
                    args[at + 1] = extra[i + 1];
                }
                else
                {
                    args.AddRange([extra[i], extra[i + 1]]);
                }
            }
            return [.. args];
        }
        Assert.That(CliApp.Run(Run()), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var stamp = File.GetLastWriteTimeUtc(Path.Combine(lds, "stores", "trak", "features.npy"));
        Assert.That(CliApp.Run(Run("--reference-models", "2")), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(File.Exists(Path.Combine(lds, "reference-1", "model.json")), Is.True, "the second reference model is trained");
        Assert.That(File.GetLastWriteTimeUtc(Path.Combine(lds, "stores", "trak", "features.npy")), Is.EqualTo(stamp), "the first reference's store is shared by R = 1 and R = 2");
        var result = JsonNode.Parse(File.ReadAllText(Path.Combine(lds, "lds-R2.json")))!;
        Assert.That(result["setting"]!["referenceModels"]!.GetValue<int>(), Is.EqualTo(2));
        var trak = result["methods"]!.AsArray().Single(m => m!["method"]!.GetValue<string>() == "trak")!;

        // The test scores are the mean of the two references' scores at the chosen λ: the LDS recomputed from them agrees.
        var first = NpyFormat.ReadMatrix(Path.Combine(lds, "scores", "trak.npy"));
        var second = NpyFormat.ReadMatrix(Path.Combine(lds, "scores-reference-1", "trak.npy"));
        Assert.That(JsonNode.Parse(File.ReadAllText(Path.Combine(lds, "scores-reference-1", "trak.json")))!["damping"]!.GetValue<double>(), Is.EqualTo(trak["damping"]!.GetValue<double>()));
        Assert.That(second.Values, Is.Not.EqualTo(first.Values), "two models, two sets of scores");
        var mean = first.Values.Zip(second.Values, (a, b) => (a + b) / 2).ToArray();
        var subsets = JsonNode.Parse(File.ReadAllText(Path.Combine(lds, "subsets.json")))!.AsArray().Select(s => s!["rows"]!.AsArray().Select(r => r!.GetValue<int>()).ToArray()).ToArray();
        var perSeed = Enumerable.Range(0, 2).Select(s => NpyFormat.ReadMatrix(Path.Combine(lds, "measured", $"loss-seed-{s}.npy")).Values
            .Select((v, i) => (v, i)).Where(x => x.i % 4 < 2).Select(x => (double)x.v).ToArray()).ToList(); // 2 test + 2 validation columns per subset
        var measured = Core.Evaluation.NoiseCeiling.MeanOverSeeds(perSeed);
        var perQuery = Core.Evaluation.Lds.PerQuery(Core.Evaluation.Lds.Predict(mean, 2, 24, subsets), measured, 2, subsets.Length);
        Assert.That(trak["perQuery"]!.AsArray().Select(v => v!.GetValue<double>()), Is.EqualTo(perQuery).Within(1e-12));

        // A store built at other settings is refused, naming --point; a named point builds its own.
        Assert.That(CliApp.Run(Run("--timesteps", "3")), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("--point").And.Contain(Path.Combine("stores", "trak")));
        Assert.That(CliApp.Run(Run("--timesteps", "3", "--point", "K3")), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(JsonNode.Parse(File.ReadAllText(Path.Combine(lds, "lds-K3.json")))!["setting"]!["timesteps"]!.GetValue<int>(), Is.EqualTo(3));

        // The curves: every point of every method in one table and a plot.
        Assert.That(CliApp.Run(["lds-curves", "--out", lds]), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var curves = File.ReadAllText(Path.Combine(lds, "lds-curves.md"));
        Assert.That(curves, Does.Contain("| trak | K 2 × 1, k 64, R 1 |").And.Contain("| trak | K 2 × 1, k 64, R 2 |").And.Contain("| trak | K 3 × 1, k 64, R 1 |")
            .And.Contain("| random | K 2 × 1, k 64, R 2 |").And.Contain("lds-R2.json"));
        Assert.That(PngImageSize(Path.Combine(lds, "lds-curves.png")), Is.EqualTo((760, 360)));
    }

    private static (int Width, int Height) PngImageSize(string path)
    {
        var (_, _, h, w) = OnnxAttribution.Imaging.PngImage.ReadBytes(path);
        return (w, h);
    }

    [Test]
    public void Lds_LargerM_ReusesTrainedModels_AndJourneyTrakIsScoredPerStep()
    {
        var grow = Path.Combine(_dir, "lds-grow");
        string[] Run(int models, int seeds) =>
        [
            "lds", "--subset", "0:24", "--subset-models", models.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--subset-seeds", seeds.ToString(System.Globalization.CultureInfo.InvariantCulture), "--validation-queries", "1", "--damping-grid", "1e-2",
            "--steps", "8", "--batch-size", "8", "--queries", "2", "--methods", "journey-trak,random", "--journey-steps", "2",
            "--measure-timesteps", "4", "--measure-draws", "1", "--dim", "64", "--sampling-steps", "4", "--out", grow,
        ];
        Assert.That(CliApp.Run(Run(2, 1)), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var first = JsonNode.Parse(File.ReadAllText(Path.Combine(grow, "lds.json")))!;
        var names = first["methods"]!.AsArray().Select(m => m!["method"]!.GetValue<string>()).ToList();
        Assert.That(names, Is.EqualTo(new[] { "journey-trak (final image)", "journey-trak", "random" }));
        Assert.That(first["methods"]![1]!["output"]!.GetValue<string>(), Does.Contain("trajectory"));
        Assert.That(first["journeySteps"]!.AsArray(), Has.Count.EqualTo(2));
        Assert.That(NpyFormat.ReadMatrix(Path.Combine(grow, "measured", "journey-trak-seed-0.npy")).Header.Columns, Is.EqualTo(2 * 2), "queries × steps");
        Assert.That(first["ceiling"], Is.Null, "one seed: no ceiling");
        foreach (var m in first["methods"]!.AsArray())
        {
            Assert.That(m!["p"]!.GetValue<double>(), Is.GreaterThan(0).And.LessThanOrEqualTo(1));
        }
        var model = File.GetLastWriteTimeUtc(Path.Combine(grow, "subsets", "model-000", "forward.onnx"));
        var measured = NpyFormat.ReadMatrix(Path.Combine(grow, "measured", "loss-seed-0.npy"));

        // More subsets and a second seed: the models trained are reused, the new ones trained.
        Assert.That(CliApp.Run(Run(3, 2)), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(File.GetLastWriteTimeUtc(Path.Combine(grow, "subsets", "model-000", "forward.onnx")), Is.EqualTo(model), "model 0 is reused");
        Assert.That(File.Exists(Path.Combine(grow, "subsets", "model-002-seed-1", "model.json")), Is.True);
        Assert.That(JsonNode.Parse(File.ReadAllText(Path.Combine(grow, "lds.json")))!["ceiling"]!["halfSize"]!.GetValue<int>(), Is.EqualTo(1));
        var grown = NpyFormat.ReadMatrix(Path.Combine(grow, "measured", "loss-seed-0.npy"));
        Assert.That(grown.Header.Rows, Is.EqualTo(3));
        Assert.That(grown.Values.Take(measured.Values.Length), Is.EqualTo(measured.Values), "the first models' measurements are kept");
        Assert.That(JsonNode.Parse(File.ReadAllText(Path.Combine(grow, "lds.json")))!["subsetModels"]!.GetValue<int>(), Is.EqualTo(3));
    }

    [Test]
    public void Lds_OtherSettingsSameFolder_RefusedNamingTheField()
    {
        Assert.That(CliApp.Run(Lds(alpha: "0.25")), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("settings.json").And.Contain("'alpha'"));
    }

    [Test]
    public void Counterfactual_ToySize_TwoStoresShareRandomRemovals_AndMoreQueriesReuseModels()
    {
        Assert.That(_firstRun, Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var cf = Path.Combine(_dir, "cf");
        var stores = Path.Combine(_dir, "lds", "stores", "trak") + "," + Path.Combine(_dir, "lds", "stores", "random");
        string[] Run(int queries) => ["counterfactual", "--store", stores, "--remove-top", "3",
            "--queries", queries.ToString(System.Globalization.CultureInfo.InvariantCulture), "--random-models", "1", "--sampling-steps", "4", "--out", cf];
        Assert.That(CliApp.Run(Run(1)), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        var result = JsonNode.Parse(File.ReadAllText(Path.Combine(cf, "counterfactual.json")))!;
        Assert.That(result["methods"]!.AsArray().Select(m => m!["method"]!.GetValue<string>()), Is.EqualTo(new[] { "trak", "random" }));
        var trak = result["methods"]![0]!;
        Assert.That(trak["perQuery"]![0]!["removed"]!.AsArray(), Has.Count.EqualTo(3));
        Assert.That(trak["pixelRmsTop"]!.GetValue<double>(), Is.GreaterThanOrEqualTo(0));
        Assert.That(trak["pixelRmsRandom"]!.GetValue<double>(), Is.EqualTo(result["methods"]![1]!["pixelRmsRandom"]!.GetValue<double>()), "one random baseline");
        Assert.That(File.Exists(Path.Combine(cf, "before-after.png")) && File.Exists(Path.Combine(cf, "counterfactual.md")), Is.True);
        Assert.That(Directory.Exists(Path.Combine(cf, "models", "trak", "query-000-top")) && Directory.Exists(Path.Combine(cf, "models", "random-00")), Is.True);
        var stamp = File.GetLastWriteTimeUtc(Path.Combine(cf, "models", "random-00", "forward.onnx"));

        Assert.That(CliApp.Run(Run(2)), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(File.GetLastWriteTimeUtc(Path.Combine(cf, "models", "random-00", "forward.onnx")), Is.EqualTo(stamp), "the random model is reused");
        Assert.That(Directory.Exists(Path.Combine(cf, "models", "random", "query-001-top")), Is.True);
        Assert.That(JsonNode.Parse(File.ReadAllText(Path.Combine(cf, "counterfactual.json")))!["methods"]![1]!["perQuery"]!.AsArray(), Has.Count.EqualTo(2));
    }

    [TestCase("counterfactual", "steps", "10")]         // the retrained models repeat the stores' own recipe: no recipe flags
    [TestCase("counterfactual", "measure-timesteps", "5")]
    [TestCase("lds", "remove-top", "5")]
    public void EvaluationVerb_OptionOfTheOtherVerb_IsRefusedNotIgnored(string verb, string option, string value)
    {
        Assert.That(CliApp.Run([verb, "--out", Path.Combine(_dir, "x"), "--store", Path.Combine(_dir, "s"), $"--{option}", value]), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain(option));
        Assert.That(Directory.Exists(Path.Combine(_dir, "x")), Is.False);
    }
}
