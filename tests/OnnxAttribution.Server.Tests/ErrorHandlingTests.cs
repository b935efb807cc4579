using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OnnxAttribution.Primitives;
using OnnxAttribution.Store;

namespace OnnxAttribution.Server.Tests;

/// <summary>The server's error mapping on its own: what a request that fails gets back, and what is logged.</summary>
[TestFixture]
public sealed class ErrorHandlingTests
{
    [Test]
    public async Task UnexpectedException_500WithoutTypeNameOrDetails_AndLogged()
    {
        var (status, error, log) = await Run(_ => throw new InvalidOperationException("the scan went wrong at /srv/store/features.npy"));
        Assert.That(status, Is.EqualTo(StatusCodes.Status500InternalServerError));
        Assert.That(error, Does.StartWith("internal error").And.Not.Contain("Exception").And.Not.Contain("/srv"));
        Assert.That(log, Has.Count.EqualTo(1).And.All.StartsWith("Error:"));
    }

    [Test]
    public async Task StoreFormatException_500WithItsMessage_AndLogged()
    {
        var (status, error, log) = await Run(_ => throw new StoreFormatException("store 's': query 'q' scored NaN at row 3"));
        Assert.That((status, error), Is.EqualTo((StatusCodes.Status500InternalServerError, "store 's': query 'q' scored NaN at row 3")));
        Assert.That(log, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task HttpProblemWithRetryAfter_ItsStatusMessageAndHeader_NotLogged()
    {
        var context = NewContext(default);
        await ServerApp.HandleErrors(context, _ => throw new HttpProblem(StatusCodes.Status503ServiceUnavailable, "queue full", 7), new ListLogger());
        Assert.That((context.Response.StatusCode, context.Response.Headers.RetryAfter.ToString()), Is.EqualTo((503, "7")));
    }

    [Test]
    public async Task UserInputException_400WithItsMessage_NotLogged()
    {
        var (status, error, log) = await Run(_ => throw new UserInputException("images[0] has 3 values"));
        Assert.That(status, Is.EqualTo(StatusCodes.Status400BadRequest));
        Assert.That(error, Is.EqualTo("images[0] has 3 values"));
        Assert.That(log, Is.Empty);
    }

    [Test]
    public async Task ClientGone_NothingWrittenNothingLoggedAsError()
    {
        using var gone = new CancellationTokenSource();
        gone.Cancel();
        var (status, error, log) = await Run(_ => throw new OperationCanceledException(gone.Token), gone.Token);
        Assert.That((status, error), Is.EqualTo((StatusCodes.Status200OK, (string?)null)));
        Assert.That(log.Where(l => l.StartsWith("Error:", StringComparison.Ordinal)), Is.Empty);
    }

    private static async Task<(int Status, string? Error, List<string> Log)> Run(RequestDelegate next, CancellationToken aborted = default)
    {
        var context = NewContext(aborted);
        var log = new ListLogger();
        await ServerApp.HandleErrors(context, next, log);
        context.Response.Body.Position = 0;
        string body = await new StreamReader(context.Response.Body).ReadToEndAsync();
        string? error = body.Length == 0 ? null : JsonDocument.Parse(body).RootElement.GetProperty("error").GetString();
        return (context.Response.StatusCode, error, log.Entries);
    }

    private static DefaultHttpContext NewContext(CancellationToken aborted)
    {
        var context = new DefaultHttpContext
        {
            RequestServices = new ServiceCollection().AddLogging().BuildServiceProvider(),
            RequestAborted = aborted,
        };
        context.Response.Body = new MemoryStream();
        return context;
    }

    private sealed class ListLogger : ILogger
    {
        public List<string> Entries { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Entries.Add($"{logLevel}: {formatter(state, exception)}");
    }
}
