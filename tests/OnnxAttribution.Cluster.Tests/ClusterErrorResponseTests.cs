using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using OnnxAttribution.Cluster.Serving;
using OnnxAttribution.Server;

namespace OnnxAttribution.Cluster.Tests;

/// <summary>How the server answers when no shard of a cluster store answered (no cluster needed: the error is thrown by hand).</summary>
[TestFixture]
public sealed class ClusterErrorResponseTests
{
    [Test]
    public async Task HandleErrors_NoShardAnswered_503WithRetryAfterNamingTheShards()
    {
        var context = new DefaultHttpContext { RequestServices = new ServiceCollection().AddLogging().BuildServiceProvider() };
        context.Response.Body = new MemoryStream();
        var error = new ClusterUnavailableException("demo", [new MissingRows(0, 0, 45, "no replica registered"), new MissingRows(1, 45, 45, "silo1: gone")]);

        await ServerApp.HandleErrors(context, _ => throw error, NullLogger.Instance);

        Assert.That(context.Response.StatusCode, Is.EqualTo(StatusCodes.Status503ServiceUnavailable));
        Assert.That(context.Response.Headers.RetryAfter.ToString(), Is.EqualTo("5"));
        context.Response.Body.Position = 0;
        string body = await new StreamReader(context.Response.Body).ReadToEndAsync();
        Assert.That(body, Does.Contain("store 'demo': no shard answered").And.Contain("rows 45…89: silo1: gone"));
    }
}
