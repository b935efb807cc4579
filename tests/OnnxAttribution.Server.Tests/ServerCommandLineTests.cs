using OnnxAttribution.Primitives;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Server.Tests;

/// <summary>The server's options as a user types them, and its exit codes.</summary>
[TestFixture]
[NonParallelizable] // redirects the process's console
public sealed class ServerCommandLineTests
{
    [Test]
    public void Parse_StoresNamedAndUnnamed_NamesUnnamedAfterTheirFolder()
    {
        var o = ServerCommandLine.Parse(["--store", "out/demo/store-dtrak/", "--store=fast=/data/s", "--model", "models/fm16", "--threads", "2", "--urls", "http://0.0.0.0:9000", "--api-key", Key])!;
        Assert.That(o.Stores, Is.EqualTo(new[] { new StoreSpec("store-dtrak", "out/demo/store-dtrak/"), new StoreSpec("fast", "/data/s") }));
        Assert.That((o.ModelDirectory, o.Urls, o.Session.IntraOpThreads), Is.EqualTo(("models/fm16", "http://0.0.0.0:9000", 2)));
    }

    private const string Key = "0123456789abcdef0123";

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

    [TestCase("onnx", ScanEngine.Onnx)]
    [TestCase("SIMD", ScanEngine.Simd)]
    public void Parse_Scan_SetsTheSessionsScanEngine(string name, ScanEngine expected)
    {
        Assert.That(ServerCommandLine.Parse(["--store", "s", "--scan", name])!.Session.Scan, Is.EqualTo(expected));
        Assert.That(ServerCommandLine.Parse(["--store", "s"])!.Session.Scan, Is.EqualTo(ScanEngine.Auto));
    }

    [TestCase("device", GradientReduction.Device)]
    [TestCase("Host", GradientReduction.Host)]
    public void Parse_Reduce_SetsTheSessionsReduction(string name, GradientReduction expected)
    {
        Assert.That(ServerCommandLine.Parse(["--store", "s", "--reduce", name])!.Session.Reduction, Is.EqualTo(expected));
        Assert.That(ServerCommandLine.Parse(["--store", "s"])!.Session.Reduction, Is.EqualTo(GradientReduction.Auto));
    }

    [Test]
    public void Parse_ExactScan_TurnsTheEightBitCopyOff()
    {
        Assert.That(ServerCommandLine.Parse(["--store", "s", "--exact-scan"])!.Session.ExactScan, Is.True);
        Assert.That(ServerCommandLine.Parse(["--store", "s"])!.Session.ExactScan, Is.False);
        Assert.That(ServerCommandLine.Help, Does.Contain("--exact-scan"));
    }

    [Test]
    public void Parse_Help_ReturnsNullAndTheTextNamesEveryOptionAndEndpoint()
    {
        Assert.That(ServerCommandLine.Parse(["--store", "s", "--help"]), Is.Null);
        string help = ServerCommandLine.Help;
        foreach (var word in new[]
        {
            "--store", "--model", "--urls", "--threads", "--device", "--scan", "--reduce", "--api-key", "--allow-anonymous", "--rate-limit", "--rate-burst",
            "--max-queries", "--max-seed-steps", "--png-side-factor", "--max-body-bytes", "--max-url-length", "--queue", "--max-wait-ms", "--seed-queue", "--seed-threads",
            "--request-timeout", "--drain-timeout", "--log-format", "--config", "Limits:QueueLength", "ONNX_ATTRIBUTION_",
            "--cluster-store", "--cluster-redis", "--cluster-id", "partial", "missing",
            "/healthz", "/readyz", "/metrics", "/stores", "/stores/{name}/attribute", "image/png", "seeds", "413", "414", "429", "503", "504",
        })
        {
            Assert.That(help, Does.Contain(word));
        }
    }

    [Test]
    public void Parse_ClusterStore_IsAClusterSpecWithTheMembershipSettings()
    {
        var options = ServerCommandLine.Parse(["--store", "s", "--cluster-store", "big=heads/big", "--cluster-redis", "127.0.0.1:6390", "--cluster-id", "c1"])!;
        Assert.That(options.Stores, Is.EqualTo(new[] { new StoreSpec("s", "s"), new StoreSpec("big", "heads/big", Cluster: true) }));
        Assert.That((options.ClusterRedis, options.ClusterId), Is.EqualTo(("127.0.0.1:6390", "c1")));
        Assert.That(ServerCommandLine.Parse(["--store", "s"])!.ClusterId, Is.EqualTo("onnx-attribution"));
    }

    [TestCase(new[] { "--cluster-store", "big=h" }, "--cluster-store needs --cluster-redis HOST:PORT")]
    [TestCase(new[] { "--store", "big=a", "--cluster-store", "big=h", "--cluster-redis", "r:1" }, "two stores are named 'big'")]
    [TestCase(new[] { "--cluster-store", "big=", "--cluster-redis", "r:1" }, "--cluster-store 'big=': no folder after '='")]
    [TestCase(new[] { "--store", "s", "--threads", "-1" }, "--threads '-1'")]
    [TestCase(new[] { "--store", "s", "--port", "80" }, "'--port'")]
    [TestCase(new[] { "--store", "s", "--device", "gpu" }, "--device 'gpu': expected cpu or cuda")]
    [TestCase(new[] { "--store", "s", "--device", "1" }, "--device '1'")]
    [TestCase(new[] { "--store", "s", "--scan", "gpu" }, "--scan 'gpu': expected auto, simd or onnx")]
    [TestCase(new[] { "--store", "s", "--reduce", "2" }, "--reduce '2': expected auto, host or device")]
    [TestCase(new[] { "--store" }, "--store needs a value")]
    [TestCase(new[] { "--model", "m" }, "no store")]
    [TestCase(new[] { "--store", "a/s", "--store", "b/s" }, "two stores are named 's'")]
    [TestCase(new[] { "--store", "my store" }, "--store NAME=my store")]
    [TestCase(new[] { "--store", "s", "--urls", "127.0.0.1:5080" }, "--urls '127.0.0.1:5080'")]
    [TestCase(new[] { "--store", "s", "--urls", "http://127.0.0.1:notaport" }, "--urls 'http://127.0.0.1:notaport'")]
    [TestCase(new[] { "--store", "s", "--urls", "ftp://127.0.0.1:21" }, "--urls 'ftp://127.0.0.1:21'")]
    [TestCase(new[] { "--store", "s", "--urls", "http://0.0.0.0:5080" }, "beyond loopback")]
    [TestCase(new[] { "--store", "s", "--api-key", "short" }, "--api-key: a key of 5 characters")]
    [TestCase(new[] { "--store", "s", "--queue", "0" }, "--queue '0' (setting Limits:QueueLength): expected a whole number ≥ 1")]
    [TestCase(new[] { "--store", "s", "--max-wait-ms", "0" }, "--max-wait-ms '0' (setting Limits:MaxWaitMs): expected a whole number ≥ 1")]
    [TestCase(new[] { "--store", "s", "--rate-limit", "fast" }, "--rate-limit 'fast'")]
    [TestCase(new[] { "--store", "s", "--allow-anonymous", "maybe" }, "--allow-anonymous 'maybe'")]
    [TestCase(new[] { "--store", "s", "--log-format", "xml" }, "--log-format 'xml' (setting LogFormat): expected simple or json")]
    [TestCase(new[] { "--store", "s", "--config", "/no/such/settings.json" }, "--config: file not found")]
    public void Parse_BadOptions_ThrowNamingTheOption(string[] args, string expected)
    {
        Assert.That(() => ServerCommandLine.Parse(args), Throws.TypeOf<UserInputException>().With.Message.Contains(expected));
    }

    [Test]
    public void Parse_EnvironmentVariable_SetsTheSettingAndTheCommandLineWins()
    {
        Environment.SetEnvironmentVariable("ONNX_ATTRIBUTION_Limits__QueueLength", "7");
        Environment.SetEnvironmentVariable("ONNX_ATTRIBUTION_Limits__SeedQueueLength", "3");
        try
        {
            var o = ServerCommandLine.Parse(["--store", "s", "--seed-queue", "2", "--max-wait-ms", "250"])!;
            Assert.That((o.Limits.QueueLength, o.Limits.SeedQueueLength, o.Limits.MaxWait), Is.EqualTo((7, 2, TimeSpan.FromMilliseconds(250))));
        }
        finally
        {
            Environment.SetEnvironmentVariable("ONNX_ATTRIBUTION_Limits__QueueLength", null);
            Environment.SetEnvironmentVariable("ONNX_ATTRIBUTION_Limits__SeedQueueLength", null);
        }
    }

    [Test]
    public void Parse_ConfigFile_ReadsStoresKeysAndLimits_CommandLineStoresReplaceTheFilesList()
    {
        var file = Path.Combine(Path.GetTempPath(), $"oa-server-settings-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, $$$"""
            {"Stores": ["a=/data/a", "/data/b"], "ApiKeys": ["{{{Key}}}"], "Urls": "http://0.0.0.0:9000",
             "Limits": {"MaxSeedSteps": 99, "RequestTimeoutSeconds": 5}, "RateLimit": {"PerSecond": 2.5}}
            """);
        try
        {
            var o = ServerCommandLine.Parse(["--config", file])!;
            Assert.That(o.Stores, Is.EqualTo(new[] { new StoreSpec("a", "/data/a"), new StoreSpec("b", "/data/b") }));
            Assert.That((o.Access.ApiKeys.Single(), o.Access.RequestsPerSecond, o.Limits.MaxSeedSteps, o.Limits.RequestTimeout), Is.EqualTo((Key, 2.5, 99, TimeSpan.FromSeconds(5))));
            Assert.That(o.LoopbackOnly, Is.False);
            var replaced = ServerCommandLine.Parse(["--config", file, "--store", "c=/data/c"])!;
            Assert.That(replaced.Stores, Is.EqualTo(new[] { new StoreSpec("c", "/data/c") }));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [TestCase("http://127.0.0.1:0", true)]
    [TestCase("http://localhost:5080;http://[::1]:5080", true)]
    [TestCase("http://127.0.0.1:5080;http://10.0.0.2:5080", false)]
    [TestCase("http://*:5080", false)]
    public void LoopbackOnly_Urls_TrueOnlyWhenEveryAddressIsLoopback(string urls, bool expected)
    {
        Assert.That(new ServerOptions([], null, urls, SessionSettings.Default).LoopbackOnly, Is.EqualTo(expected));
    }

    [Test]
    public async Task Run_MalformedUrls_ExitsTwoNamingUrls()
    {
        var (code, error) = await RunCapturingErrors(["--store", "s", "--urls", "http://127.0.0.1:99999"]);
        Assert.That(code, Is.EqualTo((int)ServerExit.BadInput));
        Assert.That(error, Does.Contain("--urls 'http://127.0.0.1:99999'"));
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
