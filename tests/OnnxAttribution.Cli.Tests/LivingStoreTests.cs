using System.Diagnostics;
using System.Text.Json.Nodes;
using OnnxAttribution.Store;

namespace OnnxAttribution.Cli.Tests;

/// <summary>
/// append, remove and the store's versions through the CLI: a process killed (SIGKILL) at any point of append or remove
/// leaves the previous version usable (or, once the change is decided, the next), and the same command run again finishes
/// it; bad input is exit 2 naming it; every change is a version that inspect --history lists and verify checks.
/// (Part of <see cref="CliTests"/>, whose set-up redirects the console and gives each test its folder.)
/// </summary>
public sealed partial class CliTests
{
    private int RunAfresh(params string[] args)
    {
        _stdout.GetStringBuilder().Clear();
        _stderr.GetStringBuilder().Clear();
        return CliApp.Run(args);
    }

    private string LivingStore(string name, string subset)
    {
        string store = Path.Combine(_dir, name);
        Assert.That(RunAfresh("featurize", "--model", FindShippedModel(), "--subset", subset, "--timesteps", "2", "--dim", "64", "--batch-size", "3",
            "--out", store), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(RunAfresh("finalize", "--store", store), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        return store;
    }

    /// <summary>The top rows and scores of two generated queries, as JSON text.</summary>
    private string LivingAnswers(string store)
    {
        Assert.That(RunAfresh("attribute", "--store", store, "--seed", "3", "--count", "2", "--steps", "2", "--top", "6", "--json"), Is.EqualTo(CliApp.Ok), _stderr.ToString());
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
        string store = LivingStore("store", "0:9");
        string before = LivingAnswers(store);
        string[] append = ["append", "--store", store, "--data", "embedded", "--subset", "9:14", "--batch-size", "2"];

        RunKilledAt(point, append);

        bool decided = point.StartsWith("commit:", StringComparison.Ordinal);
        string after = LivingAnswers(store); // opening the store finishes a decided commit
        Assert.That(Directory.Exists(StoreCommit.StagingOf(store)), Is.EqualTo(!decided), "staged files stay only for an undecided change");
        if (!decided)
        {
            Assert.That(after, Is.EqualTo(before), "the previous version answers as before");
            Assert.That(RunAfresh(append), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        }
        Assert.That(LivingAnswers(store), Is.EqualTo(LivingAnswers(LivingStore("whole", "0:14"))), "the finished append answers as a store built on all rows");
        Assert.That(RunAfresh("verify", "--store", store), Is.EqualTo(CliApp.Ok), _stdout.ToString());
        Assert.That(RunAfresh("inspect", "--store", store, "--history", "--json"), Is.EqualTo(CliApp.Ok));
        var versions = JsonNode.Parse(_stdout.ToString())!["versions"]!.AsArray();
        Assert.That(versions.Select(v => v!["change"]!.GetValue<string>()), Is.EqualTo(new[] { "featurize", "finalize", "append" }));
    }

    [Test]
    public void Quantize_VerifyChecksTheCopy_AnswersUnchanged_RemoveDeletesIt()
    {
        string store = LivingStore("store", "0:9");
        string before = LivingAnswers(store);
        string codes = Path.Combine(store, StoreFiles.QuantizedFeatures);

        Assert.That(RunAfresh("quantize", "--store", store), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(_stdout.ToString(), Does.Contain(StoreFiles.QuantizedFeatures));
        Assert.That(File.Exists(codes), Is.True);
        Assert.That(RunAfresh("verify", "--store", store), Is.EqualTo(CliApp.Ok), _stdout.ToString());
        Assert.That(_stdout.ToString(), Does.Contain("8-bit copy"));
        Assert.That(LivingAnswers(store), Is.EqualTo(before));

        var bytes = File.ReadAllBytes(codes);
        bytes[^1] ^= 0x01;
        File.WriteAllBytes(codes, bytes);
        Assert.That(RunAfresh("verify", "--store", store), Is.EqualTo(CliApp.CheckFailed));
        Assert.That(_stdout.ToString(), Does.Contain($"FAIL  {codes}"));

        Assert.That(RunAfresh("remove", "--store", store, "--rows", "4", "--reason", "test", "--by", "t"), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(File.Exists(codes), Is.False, "remove deletes the 8-bit copy of the old rows");
        Assert.That(RunAfresh("quantize", "--store", store), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(RunAfresh("quantize", "--store", store, "--delete"), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(File.Exists(codes), Is.False);
        Assert.That(RunAfresh("verify", "--store", store), Is.EqualTo(CliApp.Ok), _stdout.ToString());
    }

    [Test]
    public void Remove_KilledBeforeCommit_PreviousVersionAnswers_AndTheSameCommandFinishes()
    {
        string store = LivingStore("store", "0:9");
        string before = LivingAnswers(store);
        string[] remove = ["remove", "--store", store, "--rows", "2,5", "--reason", "takedown request", "--by", "auditor"];

        RunKilledAt("remove:staged", remove);

        Assert.That(LivingAnswers(store), Is.EqualTo(before));
        Assert.That(RunAfresh(remove), Is.EqualTo(CliApp.Ok), _stderr.ToString());
        Assert.That(LivingAnswers(store), Is.Not.EqualTo(before));
        Assert.That(RunAfresh("inspect", "--store", store, "--history"), Is.EqualTo(CliApp.Ok));
        Assert.That(_stdout.ToString(), Does.Contain("remove").And.Contain("removed 2,5").And.Contain("auditor").And.Contain("takedown request"));
    }

    [Test]
    public void AppendAndRemove_BadInput_ExitTwoNamingIt_StoreUnchanged()
    {
        string store = LivingStore("store", "0:6");
        string history = File.ReadAllText(Path.Combine(store, StoreFiles.History));

        Assert.That(RunAfresh("append", "--store", store, "--data", "embedded", "--subset", "4:8"), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("--data embedded --subset 4:8").And.Contain("row 4 of the store already"));
        Assert.That(RunAfresh("remove", "--store", store, "--rows", "9", "--reason", "x"), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("--rows 9"));
        Assert.That(RunAfresh("append", "--store", Path.Combine(_dir, "nothing"), "--data", "embedded"), Is.EqualTo(CliApp.BadInput));
        Assert.That(_stderr.ToString(), Does.Contain("nothing"));

        // A broken link in the version chain: verify fails (exit 3) naming the file and the field.
        File.WriteAllText(Path.Combine(store, StoreFiles.History), history.Replace("\"parent\": null", $"\"parent\": \"{new string('a', 64)}\""));
        Assert.That(RunAfresh("verify", "--store", store), Is.EqualTo(CliApp.CheckFailed));
        Assert.That(_stdout.ToString(), Does.Contain(StoreFiles.History).And.Contain("'parent'"));
        Assert.That(File.ReadAllText(Path.Combine(store, StoreFiles.History)), Does.Not.Contain("\"append\""));
    }
}
