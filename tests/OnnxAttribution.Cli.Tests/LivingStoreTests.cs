using System.Diagnostics;
using System.Text.Json.Nodes;
using OnnxAttribution.Core.Store;

namespace OnnxAttribution.Cli.Tests;

/// <summary>
/// append, remove and the store's versions through the CLI: a process killed (SIGKILL) at any point of append or remove
/// leaves the previous version usable (or, once the change is decided, the next), and the same command run again finishes
/// it; bad input is exit 2 naming it; every change is a version that inspect --history lists and verify checks.
/// </summary>
[TestFixture]
[NonParallelizable] // redirects the process's console
public sealed class LivingStoreTests
{
    private string _dir = "";
    private TextWriter _out = null!;
    private TextWriter _err = null!;
    private StringWriter _stdout = null!;
    private StringWriter _stderr = null!;

    private static string ShippedModel()
    {
        var root = typeof(LivingStoreTests).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
            .Cast<System.Reflection.AssemblyMetadataAttribute>().Single(a => a.Key == "RepositoryRoot").Value!;
        return Path.Combine(root, "models", "fm16");
    }

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("oa-living-").FullName;
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

    private int Run(params string[] args)
    {
        _stdout.GetStringBuilder().Clear();
        _stderr.GetStringBuilder().Clear();
        return CliApp.Run(args);
    }

    private string Build(string name, string subset)
    {
        string store = Path.Combine(_dir, name);
        Assert.That(Run("featurize", "--model", ShippedModel(), "--subset", subset, "--timesteps", "2", "--dim", "64", "--batch-size", "3", "--out", store), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(Run("finalize", "--store", store), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        return store;
    }

    /// <summary>The top rows and scores of two generated queries, as JSON text.</summary>
    private string Answers(string store)
    {
        Assert.That(Run("attribute", "--store", store, "--seed", "3", "--count", "2", "--steps", "2", "--top", "6", "--json"), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        return JsonNode.Parse(_stdout.ToString())!["rankings"]!.ToJsonString();
    }

    /// <summary>Runs the CLI in its own process with the kill point set; it must die by SIGKILL there.</summary>
    private static void RunKilledAt(string point, params string[] args)
    {
        var start = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "onnx-attribution"), args)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        start.Environment[StoreCommit.KillPointVariable] = point;
        using var process = Process.Start(start)!;
        string stderr = process.StandardError.ReadToEnd();
        process.StandardOutput.ReadToEnd();
        Assert.That(process.WaitForExit(120_000), Is.True, "the CLI did not end");
        Assert.That(process.ExitCode, Is.EqualTo(137), $"killed by SIGKILL at {point}; stderr: {stderr}");
    }

    [TestCase("append:featurized")]
    [TestCase("append:staged")]
    [TestCase("commit:moved-one")]
    public void Append_KilledAnywhere_StoreStaysUsable_AndTheSameCommandFinishes(string point)
    {
        string store = Build("store", "0:9");
        string before = Answers(store);
        string[] append = ["append", "--store", store, "--data", "embedded", "--subset", "9:14", "--batch-size", "2"];

        RunKilledAt(point, append);

        bool decided = point.StartsWith("commit:", StringComparison.Ordinal);
        string after = Answers(store); // opening the store finishes a decided commit
        Assert.That(Directory.Exists(StoreCommit.StagingOf(store)), Is.EqualTo(!decided), "staged files stay only for an undecided change");
        if (!decided)
        {
            Assert.That(after, Is.EqualTo(before), "the previous version answers as before");
            Assert.That(Run(append), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        }
        Assert.That(Answers(store), Is.EqualTo(Answers(Build("whole", "0:14"))), "the finished append answers as a store built on all rows");
        Assert.That(Run("verify", "--store", store), Is.EqualTo(CliApp.Ok), _stdout.ToString());
        Assert.That(Run("inspect", "--store", store, "--history", "--json"), Is.EqualTo(CliApp.Ok));
        var versions = JsonNode.Parse(_stdout.ToString())!["versions"]!.AsArray();
        Assert.That(versions.Select(v => v!["change"]!.GetValue<string>()), Is.EqualTo(new[] { "featurize", "finalize", "append" }));
    }

    [Test]
    public void Remove_KilledBeforeCommit_PreviousVersionAnswers_AndTheSameCommandFinishes()
    {
        string store = Build("store", "0:9");
        string before = Answers(store);
        string[] remove = ["remove", "--store", store, "--rows", "2,5", "--reason", "takedown request", "--by", "auditor"];

        RunKilledAt("remove:staged", remove);

        Assert.That(Answers(store), Is.EqualTo(before));
        Assert.That(Run(remove), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(Answers(store), Is.Not.EqualTo(before));
        Assert.That(Run("inspect", "--store", store, "--history"), Is.EqualTo(CliApp.Ok));
        Assert.That(_stdout.ToString(), Does.Contain("remove").And.Contain("removed 2,5").And.Contain("auditor").And.Contain("takedown request"));
    }

    [Test]
    public void AppendAndRemove_BadInput_ExitTwoNamingIt_StoreUnchanged()
    {
        string store = Build("store", "0:6");
        string history = File.ReadAllText(Path.Combine(store, StoreFiles.History));

        Assert.That(Run("append", "--store", store, "--data", "embedded", "--subset", "4:8"), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("--data embedded --subset 4:8").And.Contain("row 4 of the store already"));
        Assert.That(Run("remove", "--store", store, "--rows", "9", "--reason", "x"), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("--rows 9"));
        Assert.That(Run("append", "--store", Path.Combine(_dir, "nothing"), "--data", "embedded"), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("nothing"));

        // A broken link in the version chain: verify fails (exit 3) naming the file and the field.
        File.WriteAllText(Path.Combine(store, StoreFiles.History), history.Replace("\"parent\": null", $"\"parent\": \"{new string('a', 64)}\""));
        Assert.That(Run("verify", "--store", store), Is.EqualTo(CliApp.CheckFailed));
        Assert.That(_stdout.ToString(), Does.Contain(StoreFiles.History).And.Contain("'parent'"));
        Assert.That(File.ReadAllText(Path.Combine(store, StoreFiles.History)), Does.Not.Contain("\"append\""));
    }
}
