using OnnxAttribution.Core;
using OnnxAttribution.Core.Runtime;

namespace OnnxAttribution.Server.Tests;

/// <summary>The server's options as a user types them, and its exit codes.</summary>
[TestFixture]
[NonParallelizable] // redirects the process's console
public sealed class ServerCommandLineTests
{
    [Test]
    public void Parse_StoresNamedAndUnnamed_NamesUnnamedAfterTheirFolder()
    {
        var o = ServerCommandLine.Parse(["--store", "out/demo/store-dtrak/", "--store=fast=/data/s", "--model", "models/fm16", "--threads", "2", "--urls", "http://0.0.0.0:9000"])!;
        Assert.That(o.Stores, Is.EqualTo(new[] { new StoreSpec("store-dtrak", "out/demo/store-dtrak/"), new StoreSpec("fast", "/data/s") }));
        Assert.That((o.ModelDirectory, o.Urls, o.Session.IntraOpThreads), Is.EqualTo(("models/fm16", "http://0.0.0.0:9000", 2)));
    }

    [Test]
    public void Parse_Defaults_LoopbackPort5080AndOrtThreads()
    {
        var o = ServerCommandLine.Parse(["--store", "s"])!;
        Assert.That((o.ModelDirectory, o.Urls, o.Session.IntraOpThreads, o.Session.Device), Is.EqualTo(((string?)null, "http://127.0.0.1:5080", 0, ExecutionDevice.Cpu)));
    }

    [TestCase("cuda", ExecutionDevice.Cuda)]
    [TestCase("CPU", ExecutionDevice.Cpu)]
    public void Parse_Device_SetsTheSessionsDevice(string name, ExecutionDevice expected)
    {
        Assert.That(ServerCommandLine.Parse(["--store", "s", "--device", name])!.Session.Device, Is.EqualTo(expected));
    }

    [Test]
    public void Parse_Help_ReturnsNullAndTheTextNamesEveryOptionAndEndpoint()
    {
        Assert.That(ServerCommandLine.Parse(["--store", "s", "--help"]), Is.Null);
        string help = ServerCommandLine.Help;
        foreach (var word in new[] { "--store", "--model", "--urls", "--threads", "--device", "/healthz", "/stores", "/stores/{name}/attribute", "image/png", "seeds" })
        {
            Assert.That(help, Does.Contain(word));
        }
    }

    [TestCase(new[] { "--store", "s", "--threads", "-1" }, "--threads '-1'")]
    [TestCase(new[] { "--store", "s", "--port", "80" }, "'--port'")]
    [TestCase(new[] { "--store", "s", "--device", "gpu" }, "--device 'gpu': expected cpu or cuda")]
    [TestCase(new[] { "--store", "s", "--device", "1" }, "--device '1'")]
    [TestCase(new[] { "--store" }, "--store needs a value")]
    [TestCase(new[] { "--model", "m" }, "no store")]
    [TestCase(new[] { "--store", "a/s", "--store", "b/s" }, "two stores are named 's'")]
    [TestCase(new[] { "--store", "my store" }, "--store NAME=my store")]
    public void Parse_BadOptions_ThrowNamingTheOption(string[] args, string expected)
    {
        Assert.That(() => ServerCommandLine.Parse(args), Throws.TypeOf<UserInputException>().With.Message.Contains(expected));
    }

    [Test]
    public async Task Run_MissingStoreFolder_ExitsTwoNamingIt()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"oa-no-store-{Guid.NewGuid():N}");
        var (code, error) = await RunCapturingErrors(["--store", missing]);
        Assert.That(code, Is.EqualTo((int)ServerExit.BadInput));
        Assert.That(error, Does.Contain(missing));
    }

    [Test]
    public async Task Run_StoreWithoutSourceRecordNorModel_ExitsTwoAskingForModel()
    {
        var dir = Directory.CreateTempSubdirectory("oa-server-bare-").FullName;
        try
        {
            var (code, error) = await RunCapturingErrors(["--store", dir]);
            Assert.That(code, Is.EqualTo((int)ServerExit.BadInput));
            Assert.That(error, Does.Contain("source.json").And.Contain("--model"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<(int Code, string Error)> RunCapturingErrors(string[] args)
    {
        var saved = Console.Error;
        using var error = new StringWriter();
        Console.SetError(error);
        try
        {
            return (await ServerApp.RunAsync(args), error.ToString());
        }
        finally
        {
            Console.SetError(saved);
        }
    }
}
