using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Runtime;
using OnnxAttribution.Store;
using OnnxAttribution.Server.Tests.Support;

namespace OnnxAttribution.Server.Tests;

/// <summary>
/// A served store that gets a new version (append, remove) is picked up without a restart, while clients keep asking:
/// no request fails, each answer is exactly the old version's or the new one's (never a mix), and names that version.
/// </summary>
[TestFixture]
[NonParallelizable] // timing-sensitive: many requests in flight while the store changes
public sealed class StoreReloadTests
{
    private string _root = "";

    [SetUp]
    public void SetUp() => _root = Directory.CreateTempSubdirectory("oa-reload-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_root, recursive: true);

    private static float[][] Queries() =>
        [.. Enumerable.Range(0, 2).Select(i => new DatasetLocator().Load("embedded", $"{300 + i}:{301 + i}", 16).Pixels.ToArray())];

    private static async Task<(HttpStatusCode Status, string? Version, string Rankings)> Ask(HttpClient http, string store)
    {
        using var response = await http.PostAsJsonAsync($"/stores/{store}/attribute?top=8", new { images = Queries() });
        string body = await response.Content.ReadAsStringAsync();
        if (response.StatusCode != HttpStatusCode.OK)
        {
            return (response.StatusCode, null, body);
        }
        var json = JsonNode.Parse(body)!;
        return (response.StatusCode, json["storeVersion"]?.GetValue<string>(), json["rankings"]!.ToJsonString());
    }

    [Test]
    public async Task RemovedRows_ReportAndLookupsAskedTogether_NeitherListsThem()
    {
        string store = SmallStore.BuildDtrak(Path.Combine(_root, "store"), 12, 64);
        var removed = new long[] { 2, 7 };
        StoreUpdate.Remove(new RemoveRequest { StoreDirectory = store, Rows = removed, Reason = "takedown" });
        await using var server = await RunningServer.StartAsync(new ServerOptions([new StoreSpec("s", store)], null, "http://127.0.0.1:0", SessionSettings.Default)
        {
            Limits = new ServerLimits { MaxWait = TimeSpan.FromMinutes(1) },
        });

        // Asked at once, so that the report (every row's score) and the lookups can share one batch of the store's worker.
        var report = server.Http.GetStringAsync("/stores/s/report?seed=3&top=12");
        var lookups = Enumerable.Range(0, 3).Select(_ => Ask(server.Http, "s")).ToList();
        string html = await report;
        var answers = await Task.WhenAll(lookups);

        var reportRows = System.Text.RegularExpressions.Regex.Matches(html, "<tr class=\"result\">").Count;
        Assert.That(reportRows, Is.EqualTo(10), "12 rows less the 2 removed");
        foreach (long row in removed)
        {
            Assert.That(html, Does.Not.Contain($"alt=\"training row {row}\""), $"row {row} in the report");
        }
        foreach (var answer in answers)
        {
            Assert.That(answer.Status, Is.EqualTo(HttpStatusCode.OK), answer.Rankings);
            var rows = JsonNode.Parse(answer.Rankings)!.AsArray().SelectMany(r => r!["top"]!.AsArray().Select(t => t!["index"]!.GetValue<long>())).ToList();
            Assert.That(rows, Has.Count.EqualTo(16), "8 rows for each of 2 queries");
            Assert.That(rows, Has.None.AnyOf(2L, 7L));
        }
    }

    [Test]
    public async Task Append_WhileClientsAsk_NewVersionPickedUp_NoRequestFailsOrMixesVersions()
    {
        string store = SmallStore.BuildDtrak(Path.Combine(_root, "store"), 20, 64);
        string whole = SmallStore.BuildDtrak(Path.Combine(_root, "whole"), 28, 64);
        string oldVersion = StoreHistory.TryLoad(store)!.Head!.Id!;
        var options = new ServerOptions([new StoreSpec("s", store), new StoreSpec("whole", whole)], null, "http://127.0.0.1:0", SessionSettings.Default)
        {
            ReloadInterval = TimeSpan.FromMilliseconds(50),
            // Admission control is not under test: on two busy cores the lane's estimate would otherwise shed some requests (429).
            Limits = new ServerLimits { MaxWait = TimeSpan.FromMinutes(1) },
        };
        await using var server = await RunningServer.StartAsync(options);
        var before = await Ask(server.Http, "s");
        var expectedAfter = await Ask(server.Http, "whole");
        Assert.That(before.Version, Is.EqualTo(oldVersion), "the answer names the store version it came from");

        var answers = new ConcurrentBag<(HttpStatusCode Status, string? Version, string Rankings)>();
        using var stop = new CancellationTokenSource();
        var clients = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                answers.Add(await Ask(server.Http, "s"));
            }
        })).ToList();
        await Task.Delay(300);
        var appended = StoreUpdate.Append(new AppendRequest { StoreDirectory = store, Data = SmallStore.Data(28).Select([.. Enumerable.Range(20, 8)]), DataName = "embedded", Subset = "20:28" });
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!answers.Any(a => a.Version == appended.Id) && clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            await Task.Delay(50);
        }
        await Task.Delay(300);
        await stop.CancelAsync();
        await Task.WhenAll(clients);

        Assert.That(answers.Where(a => a.Status != HttpStatusCode.OK).Select(a => $"{a.Status}: {a.Rankings}"), Is.Empty, "no request failed");
        Assert.That(answers.Select(a => a.Version).Distinct(), Is.EquivalentTo(new[] { oldVersion, appended.Id }), "answers from both versions, and only those");
        Assert.That(answers.Where(a => a.Version == oldVersion).Select(a => a.Rankings), Is.All.EqualTo(before.Rankings), "old-version answers are the old store's");
        Assert.That(answers.Where(a => a.Version == appended.Id).Select(a => a.Rankings), Is.All.EqualTo(expectedAfter.Rankings),
            "new-version answers are those of a store built on all 28 rows");
        Assert.That(before.Rankings, Is.Not.EqualTo(expectedAfter.Rankings), "the two versions answer differently");
        using var stores = await server.Http.GetAsync("/stores");
        var listed = JsonNode.Parse(await stores.Content.ReadAsStringAsync())!["stores"]!.AsArray().Single(s => s!["name"]!.GetValue<string>() == "s")!;
        Assert.That(listed["versionId"]!.GetValue<string>(), Is.EqualTo(appended.Id));
        Assert.That(listed["rows"]!.GetValue<long>(), Is.EqualTo(28));
    }
}
