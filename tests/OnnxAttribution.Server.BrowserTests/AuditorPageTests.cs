using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.Playwright;
using OnnxAttribution.Core.Attribution;
using OnnxAttribution.Core.Attribution.Methods;
using OnnxAttribution.Core.Data;
using OnnxAttribution.Imaging;
using OnnxAttribution.Runtime;

namespace OnnxAttribution.Server.BrowserTests;

/// <summary>
/// The auditor's page (/ui) in Debian's Chromium, driven by Playwright, against the real server (API keys on) over a
/// small D-TRAK store of the shipped model; server, store and browser are started once for the fixture.
/// </summary>
[TestFixture]
public sealed partial class AuditorPageTests
{
    private const string Key = "browser-test-key-0123456789";
    private const int Rows = 24;
    private const int Top = 6;

    /// <summary>Where the tests look for Chromium: ONNX_ATTRIBUTION_CHROMIUM, else Debian's package.</summary>
    private static readonly string Chromium = Environment.GetEnvironmentVariable("ONNX_ATTRIBUTION_CHROMIUM") ?? "/usr/bin/chromium";

    private string _dir = "";
    private WebApplication _app = null!;
    private string _url = "";
    private IPlaywright _playwright = null!;
    private IBrowser _browser = null!;
    private ImageDataset _data = null!;

    [OneTimeSetUp]
    public async Task Start()
    {
        if (!File.Exists(Chromium))
        {
            Assert.Fail($"Chromium not found at {Chromium}: install Debian's package 'chromium' (bash scripts/setup.sh does) or set ONNX_ATTRIBUTION_CHROMIUM");
        }
        _dir = Directory.CreateTempSubdirectory("oa-ui-").FullName;
        string model = Path.Combine(RepositoryRoot(), "models", "fm16");
        _data = new DatasetLocator().Load("embedded", $"0:{Rows}", 16);
        string store = Path.Combine(_dir, "dtrak");
        AttributionMethods.Find("d-trak").Build(new MethodBuildRequest
        {
            ModelDirectory = model,
            Data = _data,
            Source = new StoreSource(model, "embedded", $"0:{Rows}", 16),
            OutDirectory = store,
            Settings = new MethodSettings { Timesteps = 1, Dim = 64 },
        });
        var options = new ServerOptions([new StoreSpec("audit", store)], null, "http://127.0.0.1:0", SessionSettings.Default)
        {
            Access = new AccessOptions { ApiKeys = [Key] },
            Limits = new ServerLimits { MaxWait = TimeSpan.FromMinutes(1) },
        };
        _app = ServerApp.Build(options);
        await _app.StartAsync();
        _url = _app.Urls.Single();
        _playwright = await Playwright.CreateAsync();
        _browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = Chromium, Headless = true });
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        if (_browser is not null)
        {
            await _browser.DisposeAsync();
        }
        _playwright?.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Test]
    public async Task Upload_APng_ShowsTopResultCells()
    {
        var page = await Open(Key);
        await page.SetInputFilesAsync("#file", new FilePayload { Name = "row3.png", MimeType = "image/png", Buffer = TrainingPng(3) });

        await Assertions.Expect(page.Locator("#results .cell")).ToHaveCountAsync(Top);
        Assert.That(await page.Locator("#results .cell").First.GetAttributeAsync("data-row"), Is.EqualTo("3"), "a training image ranks its own row first");
        Assert.That(await page.Locator("#query-label").TextContentAsync(), Is.EqualTo("row3.png"));
        await page.CloseAsync();
    }

    [Test]
    public async Task Seed_Entered_ShowsResultsAndDetailsOfAClickedOne()
    {
        var page = await Open(Key);
        await page.FillAsync("#seed", "11");
        await page.ClickAsync("#run-seed");

        await Assertions.Expect(page.Locator("#results .cell")).ToHaveCountAsync(Top);
        var second = page.Locator("#results .cell").Nth(1);
        string row = (await second.GetAttributeAsync("data-row"))!;
        await second.ClickAsync();
        await Assertions.Expect(page.Locator("#d-row")).ToHaveTextAsync(row);
        await Assertions.Expect(page.Locator("#d-rank")).ToHaveTextAsync("2");
        int label = _data.Labels![int.Parse(row, System.Globalization.CultureInfo.InvariantCulture)];
        await Assertions.Expect(page.Locator("#d-label")).ToHaveTextAsync(label.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await page.CloseAsync();
    }

    [Test]
    public async Task DownloadReport_AfterASeed_SelfContainedHtmlWithTheScoresShown()
    {
        var page = await Open(Key);
        await page.FillAsync("#seed", "5");
        await page.ClickAsync("#run-seed");
        await Assertions.Expect(page.Locator("#results .cell")).ToHaveCountAsync(Top);
        var shown = await page.Locator("#results .cell .score").AllTextContentsAsync();

        var download = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("#download"));
        string file = Path.Combine(_dir, $"report-{Guid.NewGuid():N}.html");
        await download.SaveAsAsync(file);
        string html = await File.ReadAllTextAsync(file);
        File.Delete(file);

        Assert.That(html, Does.StartWith("<!DOCTYPE html>"));
        Assert.That(ExternalReference().IsMatch(html), Is.False, "no src or href reaches outside the file");
        Assert.That(html, Does.Not.Contain("<script"));
        Assert.That(Regex.Matches(html, "<tr class=\"result\">").Count, Is.EqualTo(Top));
        Assert.That(shown, Has.Count.EqualTo(Top));
        foreach (string score in shown)
        {
            Assert.That(html, Does.Contain($"<td class=\"num score\">{score}</td>"), $"the score {score} shown on the page");
        }
        await page.CloseAsync();
    }

    [Test]
    public async Task WrongApiKey_ShowsTheServersMessage()
    {
        var page = await Open("not-the-key-of-this-server");

        await Assertions.Expect(page.Locator("#error")).ToHaveTextAsync("the API key is not one this server accepts");
        await page.CloseAsync();
    }

    [Test]
    public async Task Upload_NotAPng_ShowsTheServersMessage()
    {
        var page = await Open(Key);
        await page.SetInputFilesAsync("#file", new FilePayload { Name = "notes.png", MimeType = "image/png", Buffer = "plain text"u8.ToArray() });

        await Assertions.Expect(page.Locator("#error")).ToContainTextAsync("not a readable image");
        Assert.That(await page.Locator("#results .cell").CountAsync(), Is.Zero);
        await page.CloseAsync();
    }

    /// <summary>
    /// The screenshot in docs/results/ui.png: taken only when ONNX_ATTRIBUTION_UI_SCREENSHOT names the file to write
    /// (tools/ui-screenshot.sh), so a test run never changes the repository. Otherwise it checks that the page renders.
    /// </summary>
    [Test]
    public async Task Screenshot_SeedAnswered_PageRendersResults()
    {
        var page = await Open(Key, new ViewportSize { Width = 1100, Height = 560 });
        await page.FillAsync("#seed", "7");
        await page.ClickAsync("#run-seed");
        await Assertions.Expect(page.Locator("#results .cell")).ToHaveCountAsync(Top);
        await page.Locator("#results .cell").First.ClickAsync();
        byte[] png = await page.ScreenshotAsync();
        Assert.That(png.Length, Is.GreaterThan(1000));
        if (Environment.GetEnvironmentVariable("ONNX_ATTRIBUTION_UI_SCREENSHOT") is { Length: > 0 } path)
        {
            await File.WriteAllBytesAsync(path, png);
        }
        await page.CloseAsync();
    }

    private async Task<IPage> Open(string key, ViewportSize? viewport = null)
    {
        var page = await _browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = viewport ?? new ViewportSize { Width = 1100, Height = 800 } });
        await page.GotoAsync(_url + "/ui");
        await page.FillAsync("#key", key);
        await page.FillAsync("#top", Top.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await page.ClickAsync("#reload");
        if (key == Key)
        {
            // The page asks for the store list when the key is entered: a query before it arrives has no store to go to.
            await Assertions.Expect(page.Locator("#store option")).Not.ToHaveCountAsync(0);
        }
        return page;
    }

    private byte[] TrainingPng(int row) => PngImage.Encode(_data.Image(row), 1, 16, 16);

    private static string RepositoryRoot() => RepositoryFiles.Root;

    [GeneratedRegex("(src|href)\\s*=\\s*[\"']?\\s*(https?:)?//", RegexOptions.IgnoreCase)]
    private static partial Regex ExternalReference();
}
