using System.Net.Http.Json;

namespace OnnxAttribution.Server.Tests.Support;

/// <summary>Reading the server's answers in tests.</summary>
internal static class Responses
{
    /// <summary>The message of an error answer, checking that it is the server's JSON <c>{"error": …}</c>.</summary>
    public static async Task<string> Error(HttpResponseMessage response)
    {
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/json"), await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<ErrorResponse>())!.Error;
    }
}
